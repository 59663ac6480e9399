"""The blocking client against the real rio-server, a real PostgreSQL and real
HTTP receivers: what a receiver gets, every DSN form, errors, retries and
idempotency."""

import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid

import grpc
import pytest

import rio_client
from rio_client import (
    Client,
    Event,
    InvalidArgument,
    PermissionDenied,
    Retry,
    RioError,
    Unauthenticated,
    Unavailable,
    WebhookVerificationError,
    webhook,
)
from rio_client.v1 import emit_pb2

import support

EVENT = "comment-published"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
FAST_RETRY = Retry(max_attempts=3, initial_backoff=0.05, max_backoff=0.2)


def dsn_for(sender: support.Sender, server: support.ServerProcess, scheme="rio", path=None, port=None):
    path = path if path is not None else sender.project
    return (f"{scheme}://{sender.name}:{sender.token}@127.0.0.1:"
            f"{port if port is not None else server.port}/{path}")


def messages_with_key(sql, key):
    return int(sql(f"SELECT count(*) FROM messages WHERE idempotency_key = '{key}'"))


def test_emit_lands_at_a_real_receiver_signed(server, admin, sender, receiver):
    handler = admin.create_handler(sender.project, EVENT, receiver.url("/hooks/json"))
    payload = {"ip": "127.0.0.1", "content": "I am a spammer", "id": 2**60 + 1, "tags": ["é", None]}
    with Client(sender.dsn) as client:
        result = client.emit(EVENT, payload)

    assert UUID.fullmatch(result.message_id)
    assert result.handlers == 1
    assert result.duplicate is False
    assert uuid.UUID(result.idempotency_key).version == 4

    [request] = receiver.wait(1)
    assert request.method == "POST"
    assert request.path == "/hooks/json"
    # Exactly the JSON text the SDK sent, byte for byte.
    assert request.body == json.dumps(payload, separators=(",", ":")).encode()
    assert json.loads(request.body) == payload
    h = request.headers
    assert h["content-type"] == "application/json"
    assert h["webhook-id"] == result.message_id
    assert h["x-rio-event"] == f"uuid={result.message_id},project={sender.project},action={EVENT}"
    assert h["x-rio-attempt"] == "1"
    assert h["user-agent"].startswith("rio/")
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    assert webhook.verify(handler.secret, h, request.body)
    webhook.check(handler.secret, h, request.body)
    assert not webhook.verify(handler.secret, h, request.body + b" ")


def test_a_get_delivery_is_signed_over_its_query_string(admin, sender, receiver):
    """A GET handler gets the payload in the query string and an empty body;
    the signature covers the query string exactly as sent."""
    handler = admin.create_handler(
        sender.project, EVENT, receiver.url("/hooks/get?static=1"), json=False, method="GET")
    with Client(sender.dsn) as client:
        result = client.emit(EVENT, {"ip": "127.0.0.1", "content": "I am a spammer"})

    [request] = receiver.wait(1)
    assert request.method == "GET"
    assert request.body == b""
    path, _, query = request.path.partition("?")
    assert path == "/hooks/get"
    assert query == "static=1&ip=127.0.0.1&content=I+am+a+spammer"
    assert request.headers["webhook-id"] == result.message_id
    webhook.check(handler.secret, request.headers, query.encode())
    assert webhook.verify(handler.secret, request.headers, query)
    assert webhook.verify(
        handler.secret, request.headers, webhook.signed_content("GET", request.body, query))
    # Not the (empty) body, and no tampered query string.
    assert not webhook.verify(handler.secret, request.headers, request.body)
    for tampered in (
        "static=1&ip=127.0.0.1&content=I+am+a+friend",
        "static=1&ip=10.6.6.6&content=I+am+a+spammer",
        query + "&admin=1",
        "ip=127.0.0.1&content=I+am+a+spammer",
    ):
        with pytest.raises(WebhookVerificationError, match="no webhook-signature entry matches"):
            webhook.check(handler.secret, request.headers, tampered)


def test_a_get_delivery_passes_the_flask_decorator(admin, sender):
    """A real GET delivery to a real Flask server: webhook_required checks the
    query string by itself; Rio's headers replayed with another query string
    get 401 and never reach the view."""
    import flask  # python3-flask, installed by tools/test
    from rio_client.flask import webhook_required

    handler = admin.create_handler(
        sender.project, EVENT, "http://127.0.0.1:9/not-yet", json=False, method="GET")
    app = flask.Flask(__name__)
    seen = []

    @app.route("/webhook/comment/antispam", methods=["GET"])
    @webhook_required(handler.secret)
    def antispam_comment():
        seen.append((dict(flask.request.args), dict(flask.request.headers)))
        return flask.jsonify(status="success", retval=0)

    with support.wsgi_server(app) as port:
        url = f"http://127.0.0.1:{port}/webhook/comment/antispam"
        admin.update_handler_url(handler.id, url)
        with Client(sender.dsn) as client:
            client.emit(EVENT, {"ip": "127.0.0.1", "content": "I am a spammer"})
        assert support.wait_for(lambda: len(seen) == 1), seen
        args, headers = seen[0]
        assert args == {"ip": "127.0.0.1", "content": "I am a spammer"}

        signed = {k: v for k, v in headers.items() if k.lower().startswith("webhook-")}

        def replay(query: str) -> int:
            try:
                with urllib.request.urlopen(urllib.request.Request(
                        f"{url}?{query}", headers=signed), timeout=10) as reply:
                    return reply.status
            except urllib.error.HTTPError as error:
                return error.code

        assert replay("ip=10.6.6.6&content=I+am+a+spammer") == 401
        assert replay("ip=127.0.0.1&content=I+am+a+spammer&x=1") == 401
        assert replay("") == 401
        assert len(seen) == 1
        # The request as Rio sent it still verifies (dedupe on webhook-id).
        assert replay("ip=127.0.0.1&content=I+am+a+spammer") == 200
        assert len(seen) == 2


def test_json_text_payload_is_sent_byte_for_byte(admin, sender, receiver):
    admin.create_handler(sender.project, EVENT, receiver.url())
    text = '{"b": 1,   "a" : [1, 2.50, 12345678901234567890], "c": "\\u00e9"}'
    with Client(sender.dsn) as client:
        client.emit(EVENT, text)
        client.emit(EVENT, text.encode())
    assert [r.body for r in receiver.wait(2)] == [text.encode(), text.encode()]


SEED_SNIPPET = """\
from rio_client import Client
client = Client(DSN='http://sender:*********@rio.intra.example.org/1/project')
client.emit('comment-published', {'ip': '127.0.0.1', 'content': 'I am a spammer'})
"""


def test_seed_snippet_runs_unchanged_and_the_seed_flask_view_gets_the_call(
    server, admin, receiver, tmp_path
):
    """The README's promise: the seed's snippet (IP quoted, DSN pointed at the
    local server) and the seed's Flask view (examples/flask_receiver.py)."""
    project = admin.create_project("project")
    sender = admin.create_sender(project, "sender")
    form_handler = admin.create_handler(project, EVENT, receiver.url("/raw"), json=False)

    # The view's handler exists first: the receiver needs its secret.
    view = admin.create_handler(project, EVENT, "http://127.0.0.1:9/not-yet", json=False)
    flask_out = tmp_path / "flask.out"
    with support.example_process(
        ["flask_receiver.py", "--port", "0"], flask_out, env={"RIO_WEBHOOK_SECRET": view.secret},
    ) as process:
        port = support.wait_for_flask_port(process, flask_out)
        admin.update_handler_url(view.id, f"http://127.0.0.1:{port}/webhook/comment/antispam")
        snippet = SEED_SNIPPET.replace(
            "http://sender:*********@rio.intra.example.org/1/project",
            f"http://sender:{sender.token}@127.0.0.1:{server.port}/1/project")
        support.run_python(["-c", snippet])

        assert support.wait_for(
            lambda: "banned 127.0.0.1" in flask_out.read_text()
            and '"POST /webhook/comment/antispam HTTP/1.1" 200' in flask_out.read_text(),
        ), flask_out.read_text()

        # An unsigned request never reaches the view.
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/webhook/comment/antispam",
                data=b"ip=10.6.6.6&content=I+am+a+spammer", method="POST"), timeout=10)
        assert info.value.code == 401
        assert "banned 10.6.6.6" not in flask_out.read_text()

    [request] = receiver.wait(1)
    assert support.parse_form(request.body) == {"ip": "127.0.0.1", "content": "I am a spammer"}
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert webhook.verify(form_handler.secret, request.headers, request.body)


def test_send_example_emits(server, admin, sender, receiver):
    admin.create_handler(sender.project, EVENT, receiver.url(), json=False)
    out = support.run_python(
        ["send.py", "--content", "free money", "--ip", "10.0.0.7"], env={"RIO_DSN": sender.dsn})
    assert re.fullmatch(r"emitted [0-9a-f-]{36} to 1 handler\(s\)\n", out), out
    [request] = receiver.wait(1)
    assert support.parse_form(request.body) == {"ip": "10.0.0.7", "content": "free money"}


@pytest.mark.parametrize("form", [
    "rio", "http-seed", "http-deep-path", "positional", "keyword", "upper", "environment",
])
def test_every_dsn_form_reaches_the_server(form, server, admin, sender, receiver, monkeypatch):
    admin.create_handler(sender.project, EVENT, receiver.url())
    monkeypatch.delenv("RIO_DSN", raising=False)
    rio = dsn_for(sender, server)
    if form == "rio":
        client = Client(rio)
    elif form == "http-seed":
        client = Client(DSN=dsn_for(sender, server, "http", f"1/{sender.project}"))
    elif form == "http-deep-path":
        client = Client(dsn_for(sender, server, "http", f"a/b/{sender.project}/"))
    elif form == "positional":
        client = Client(rio)
    elif form == "keyword":
        client = Client(dsn=rio)
    elif form == "upper":
        client = Client(DSN=rio)
    else:
        monkeypatch.setenv("RIO_DSN", rio)
        client = Client()
    with client:
        result = client.emit(EVENT, {"form": form})
    assert result.handlers == 1
    [request] = receiver.wait(1)
    assert json.loads(request.body) == {"form": form}


@pytest.mark.parametrize("scheme", ["rios", "https"])
def test_tls_dsns_use_tls(scheme, server, admin, sender, receiver, tmp_path):
    """rio-server itself speaks plaintext here, so a TLS-terminating proxy
    with a self-signed certificate stands in front of it."""
    admin.create_handler(sender.project, EVENT, receiver.url())
    key, cert = support.self_signed_certificate(str(tmp_path))
    proxy = support.FlakyProxy(server.grpc_address, tls=(key, cert))
    try:
        dsn = dsn_for(sender, server, scheme, f"1/{sender.project}", port=proxy.port)
        with Client(dsn, root_certificates=cert) as client:
            assert client.emit(EVENT, {"tls": scheme}).handlers == 1
        # Without the proxy's root the handshake fails: it really is TLS.
        with Client(dsn, retry=rio_client.NO_RETRY) as client:
            with pytest.raises(Unavailable):
                client.emit(EVENT, {"tls": "untrusted"})
        # And a plaintext DSN cannot talk to a TLS port.
        with Client(dsn_for(sender, server, "rio", port=proxy.port), retry=rio_client.NO_RETRY,
                    timeout=3) as client:
            with pytest.raises(RioError):
                client.emit(EVENT, {"tls": "none"})
    finally:
        proxy.close()
    assert [json.loads(r.body) for r in receiver.wait(1)] == [{"tls": scheme}]


def test_wrong_token_is_an_authentication_error(server, sender):
    bad = dsn_for(sender, server).replace(sender.token, "not-the-token")
    with Client(bad) as client:
        with pytest.raises(Unauthenticated) as info:
            client.emit(EVENT, {"ip": "127.0.0.1"})
    error = info.value
    assert isinstance(error, RioError)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert str(error) == "UNAUTHENTICATED: invalid sender credentials"
    assert error.attempts == 1  # not retried
    assert isinstance(error.grpc_error, grpc.RpcError)
    assert error.__cause__ is error.grpc_error
    assert error.grpc_error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_sender_is_an_authentication_error(server, sender):
    with Client(f"rio://nobody:{sender.token}@127.0.0.1:{server.port}/{sender.project}") as client:
        with pytest.raises(Unauthenticated):
            client.emit(EVENT, {})


def test_another_projects_sender_is_denied(server, admin, sender):
    other = admin.create_project()
    with Client(dsn_for(sender, server, path=other)) as client:
        with pytest.raises(PermissionDenied) as info:
            client.emit(EVENT, {})
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("event, payload, message", [
    ("bad event!", {}, "event"),
    (EVENT, "[1, 2]", "object"),
    (EVENT, "{not json", "JSON"),
])
def test_bad_input_is_invalid_argument(event, payload, message, sender):
    with Client(sender.dsn) as client:
        with pytest.raises(InvalidArgument, match=message):
            client.emit(event, payload)


def test_payload_of_the_wrong_type_is_a_type_error(sender):
    with Client(sender.dsn) as client:
        with pytest.raises(TypeError, match="payload must be a dict"):
            client.emit(EVENT, [1, 2])


def test_no_payload_emits_an_empty_object(admin, sender, receiver):
    admin.create_handler(sender.project, EVENT, receiver.url())
    with Client(sender.dsn) as client:
        client.emit(EVENT)
    assert receiver.wait(1)[0].body == b"{}"


def test_server_down_retries_then_unavailable(sender):
    port = support.free_port()  # nothing listens there
    dsn = f"rio://{sender.name}:{sender.token}@127.0.0.1:{port}/{sender.project}"
    start = time.monotonic()
    with Client(dsn, retry=FAST_RETRY, timeout=5) as client:
        with pytest.raises(Unavailable) as info:
            client.emit(EVENT, {"ip": "127.0.0.1"})
    elapsed = time.monotonic() - start
    assert info.value.attempts == 3
    assert "after 3 attempts" in str(info.value)
    assert str(info.value).startswith("UNAVAILABLE: ")
    assert info.value.grpc_error.code() == grpc.StatusCode.UNAVAILABLE
    # Two backoffs of at least 0.05*0.8 and 0.1*0.8 seconds were waited.
    assert elapsed >= 0.12


def test_server_down_with_default_policy_gives_up_in_bounded_time(sender):
    port = support.free_port()
    dsn = f"rio://{sender.name}:{sender.token}@127.0.0.1:{port}/{sender.project}"
    start = time.monotonic()
    with Client(dsn) as client:
        with pytest.raises(Unavailable) as info:
            client.emit(EVENT, {})
    assert info.value.attempts == 5
    assert time.monotonic() - start < 10


def test_server_that_comes_back_during_retries_gets_the_emit(server, admin, sender, receiver):
    """UNAVAILABLE twice (nothing forwarded), then the emit goes through."""
    admin.create_handler(sender.project, EVENT, receiver.url())
    proxy = support.FlakyProxy(server.grpc_address, ["refuse", "refuse"])
    try:
        with Client(dsn_for(sender, server, port=proxy.port), retry=FAST_RETRY) as client:
            result = client.emit(EVENT, {"n": 1})
    finally:
        proxy.close()
    assert result.duplicate is False and result.handlers == 1
    assert len(proxy.calls) == 3
    assert len({k for c in proxy.calls for k in c.idempotency_keys}) == 1
    receiver.wait(1)


@pytest.mark.parametrize("mode", ["drop", "late"])
def test_retried_emit_after_a_lost_reply_is_not_duplicated(mode, server, admin, sender, receiver, sql):
    """The server commits the first attempt but its reply never arrives
    ("drop": UNAVAILABLE; "late": past the deadline). The retry carries the same
    idempotency key, so Rio answers with the first message, duplicate=True,
    and creates nothing."""
    admin.create_handler(sender.project, EVENT, receiver.url())
    proxy = support.FlakyProxy(server.grpc_address, [mode])
    try:
        with Client(dsn_for(sender, server, port=proxy.port), retry=FAST_RETRY,
                    timeout=3) as client:
            result = client.emit(EVENT, {"ip": "127.0.0.1"})
    finally:
        proxy.close()

    first, second = proxy.calls
    assert first.idempotency_keys == second.idempotency_keys == [result.idempotency_key]
    lost = emit_pb2.EmitResponse.FromString(first.reply)
    assert lost.duplicate is False
    assert result.message_id == lost.message_id
    assert result.duplicate is True
    assert messages_with_key(sql, result.idempotency_key) == 1
    assert sql(f"SELECT count(*) FROM deliveries WHERE message_id = '{result.message_id}'") == "1"
    [request] = receiver.wait(1)
    assert request.headers["webhook-id"] == result.message_id


def test_explicit_idempotency_key(sender, sql):
    key = f"comment-{uuid.uuid4()}"
    with Client(sender.dsn) as client:
        first = client.emit(EVENT, {"n": 1}, idempotency_key=key)
        second = client.emit(EVENT, {"n": 2}, idempotency_key=key)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.message_id == second.message_id
    assert first.idempotency_key == second.idempotency_key == key
    assert messages_with_key(sql, key) == 1


def test_each_emit_gets_its_own_key(sender):
    with Client(sender.dsn) as client:
        a, b = client.emit(EVENT, {"n": 1}), client.emit(EVENT, {"n": 1})
    assert a.idempotency_key != b.idempotency_key
    assert a.message_id != b.message_id
    assert not a.duplicate and not b.duplicate


def test_emit_batch(admin, sender, receiver):
    admin.create_handler(sender.project, EVENT, receiver.url())
    with Client(sender.dsn) as client:
        results = client.emit_batch([
            (EVENT, {"n": 1}),
            Event(EVENT, {"n": 2}),
            {"event": "nobody-listens", "payload": {"n": 3}},
            (EVENT, '{"n":4}', "batch-key-4"),
        ])
        again = client.emit_batch([(EVENT, {"n": 5}, "batch-key-4")])
    assert [r.handlers for r in results] == [1, 1, 0, 1]
    assert [r.duplicate for r in results] == [False] * 4
    assert len({r.message_id for r in results}) == 4
    assert len({r.idempotency_key for r in results}) == 4
    assert results[3].idempotency_key == "batch-key-4"
    assert again[0].duplicate and again[0].message_id == results[3].message_id
    bodies = sorted(json.loads(r.body)["n"] for r in receiver.wait(3))
    assert bodies == [1, 2, 4]


def test_emit_batch_rejects_malformed_items(sender):
    with Client(sender.dsn) as client:
        with pytest.raises(TypeError, match="batch events"):
            client.emit_batch([EVENT])
        with pytest.raises(InvalidArgument):
            client.emit_batch([])


def test_client_is_thread_safe(admin, sender, receiver):
    admin.create_handler(sender.project, EVENT, receiver.url())
    results = []
    with Client(sender.dsn) as client:
        def work(n):
            results.append(client.emit(EVENT, {"n": n}))
        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len({r.message_id for r in results}) == 16
    assert len(receiver.wait(16)) == 16


def test_closed_client_refuses_calls(sender):
    client = Client(sender.dsn)
    client.close()
    client.close()  # idempotent
    with pytest.raises(rio_client.ClientClosed):
        client.emit(EVENT, {})
