"""The asyncio client against the real rio-server."""

import asyncio
import json

import grpc
import pytest

from rio_client import ClientClosed, Retry, Unauthenticated, Unavailable, webhook
from rio_client.aio import AsyncClient

import support

EVENT = "comment-published"
FAST_RETRY = Retry(max_attempts=3, initial_backoff=0.05, max_backoff=0.2)


def run(coroutine):
    return asyncio.run(coroutine)


def test_async_emit_lands_at_a_real_receiver(admin, sender, receiver):
    handler = admin.create_handler(sender.project, EVENT, receiver.url())

    async def main():
        async with AsyncClient(sender.dsn) as client:
            return await client.emit(EVENT, {"ip": "127.0.0.1", "content": "I am a spammer"})

    result = run(main())
    assert result.handlers == 1 and not result.duplicate
    [request] = receiver.wait(1)
    assert request.body == b'{"ip":"127.0.0.1","content":"I am a spammer"}'
    assert request.headers["webhook-id"] == result.message_id
    assert webhook.verify(handler.secret, request.headers, request.body)


def test_async_emits_run_concurrently_and_batch(admin, sender, receiver):
    admin.create_handler(sender.project, EVENT, receiver.url())

    async def main():
        async with AsyncClient(DSN=sender.dsn) as client:
            singles = await asyncio.gather(*(client.emit(EVENT, {"n": n}) for n in range(10)))
            batch = await client.emit_batch([(EVENT, {"n": 10}), (EVENT, {"n": 11})])
            return singles, batch

    singles, batch = run(main())
    assert len({r.message_id for r in singles + batch}) == 12
    assert sorted(json.loads(r.body)["n"] for r in receiver.wait(12)) == list(range(12))


def test_async_dsn_from_environment(monkeypatch, sender):
    monkeypatch.setenv("RIO_DSN", sender.dsn)

    async def main():
        async with AsyncClient() as client:
            return await client.emit(EVENT, {})

    assert run(main()).handlers == 0


def test_async_wrong_token_is_an_authentication_error(server, sender):
    bad = sender.dsn.replace(sender.token, "wrong")

    async def main():
        async with AsyncClient(bad) as client:
            await client.emit(EVENT, {})

    with pytest.raises(Unauthenticated) as info:
        run(main())
    assert info.value.attempts == 1
    assert isinstance(info.value.__cause__, grpc.RpcError)
    assert info.value.grpc_error is info.value.__cause__


def test_async_server_down_retries_then_unavailable(sender):
    dsn = f"rio://{sender.name}:{sender.token}@127.0.0.1:{support.free_port()}/{sender.project}"

    async def main():
        async with AsyncClient(dsn, retry=FAST_RETRY) as client:
            await client.emit(EVENT, {})

    with pytest.raises(Unavailable) as info:
        run(main())
    assert info.value.attempts == 3


def test_async_retry_after_lost_reply_is_not_duplicated(server, admin, sender, receiver, sql):
    admin.create_handler(sender.project, EVENT, receiver.url())
    proxy = support.FlakyProxy(server.grpc_address, ["drop"])
    dsn = f"rio://{sender.name}:{sender.token}@127.0.0.1:{proxy.port}/{sender.project}"

    async def main():
        async with AsyncClient(dsn, retry=FAST_RETRY) as client:
            return await client.emit(EVENT, {"once": True})

    try:
        result = run(main())
    finally:
        proxy.close()
    assert result.duplicate is True
    assert [c.idempotency_keys for c in proxy.calls] == [[result.idempotency_key]] * 2
    assert sql(f"SELECT count(*) FROM messages WHERE idempotency_key = '{result.idempotency_key}'") == "1"
    assert len(receiver.wait(1)) == 1


def test_async_closed_client_refuses_calls(sender):
    async def main():
        client = AsyncClient(sender.dsn)
        await client.emit(EVENT, {})
        await client.close()
        await client.emit(EVENT, {})

    with pytest.raises(ClientClosed):
        run(main())
