"""The asyncio client, on grpc.aio.

    from rio_client.aio import AsyncClient
    async with AsyncClient('rio://comments-app:TOKEN@127.0.0.1:50051/comments') as client:
        result = await client.emit('comment-published', {'ip': '127.0.0.1'})

Same arguments, results, retries and errors as ``rio_client.Client``. Use
one AsyncClient per event loop: its channel is made on the first call, inside
the loop that runs it.
"""

import asyncio
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import grpc
import grpc.aio

from . import _common
from ._common import EmitResult, EventLike, Payload
from ._gen.rio.v1 import emit_pb2_grpc
from .dsn import DSN
from .errors import ClientClosed, from_grpc_error
from .retry import Retry

__all__ = ["AsyncClient"]


class AsyncClient:
    """Emits events into the project of one sender DSN, with asyncio.

    Arguments as for ``rio_client.Client``. The DSN is checked here (raising
    InvalidDSN before any network call); the connection is made lazily.
    """

    def __init__(
        self,
        dsn: Optional[str] = None,
        *,
        DSN: Optional[str] = None,  # noqa: N803 - the seed's spelling
        timeout: Optional[float] = None,
        retry: Optional[Retry] = None,
        root_certificates: Optional[_common.Pem] = None,
        tls_server_name: Optional[str] = None,
        client_certificate: Optional[_common.Pem] = None,
        client_key: Optional[_common.Pem] = None,
        channel_options: Sequence[Tuple[str, Any]] = (),
        json_dumps: Optional[Callable[[Any], str]] = None,
    ) -> None:
        self._dsn = _common.resolve_dsn(dsn, DSN)
        self._tls = _common.resolve_tls(
            self._dsn, root_certificates, tls_server_name, client_certificate, client_key
        )
        self._timeout, self._retry = _common.check_options(timeout, retry)
        self._dumps = json_dumps or _common.compact_json
        self._metadata = _common.auth_metadata(self._dsn)
        self._options = _common.channel_options(channel_options)
        self._sleep = asyncio.sleep
        self._channel: Optional[grpc.aio.Channel] = None
        self._emit_stub: Optional[emit_pb2_grpc.EmitServiceStub] = None
        self._closed = False

    @property
    def dsn(self) -> "DSN":
        return self._dsn

    @property
    def project(self) -> str:
        return self._dsn.project

    def _stub(self) -> emit_pb2_grpc.EmitServiceStub:
        if self._emit_stub is None:
            if self._dsn.tls:
                self._channel = grpc.aio.secure_channel(
                    self._dsn.target,
                    _common.channel_credentials(self._tls),
                    options=_common.tls_channel_options(self._tls) + self._options,
                )
            else:
                self._channel = grpc.aio.insecure_channel(self._dsn.target, options=self._options)
            self._emit_stub = emit_pb2_grpc.EmitServiceStub(self._channel)
        return self._emit_stub

    async def emit(
        self,
        event: str,
        payload: Payload = None,
        *,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> EmitResult:
        """See ``rio_client.Client.emit``."""
        request = _common.emit_request(self._dsn, event, payload, idempotency_key, self._dumps)
        response = await self._call("Emit", request, timeout)
        return _common.emit_result(response, request.idempotency_key)

    async def emit_batch(
        self, events: Iterable[EventLike], *, timeout: Optional[float] = None
    ) -> List[EmitResult]:
        """See ``rio_client.Client.emit_batch``."""
        request = _common.batch_request(self._dsn, events, self._dumps)
        response = await self._call("EmitBatch", request, timeout)
        return _common.batch_results(response, request)

    async def _call(self, method: str, request: Any, timeout: Optional[float]) -> Any:
        """Every RPC goes through here: credentials, a deadline per attempt,
        retries with backoff, and gRPC errors turned into RioErrors."""
        if self._closed:
            raise ClientClosed("this rio_client.aio.AsyncClient is closed")
        rpc = getattr(self._stub(), method)
        timeout = self._timeout if timeout is None else timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return await rpc(request, timeout=timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if self._retry.should_retry(error.code(), attempt):
                    await self._sleep(self._retry.backoff(attempt))
                    continue
                raise from_grpc_error(error, attempts=attempt) from error

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._emit_stub = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"rio_client.aio.AsyncClient({str(self._dsn)!r})"
