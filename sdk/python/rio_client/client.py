"""The blocking client.

    from rio_client import Client
    client = Client(DSN='rio://comments-app:TOKEN@127.0.0.1:50051/comments')
    result = client.emit('comment-published', {'ip': '127.0.0.1', 'content': 'I am a spammer'})

A Client is safe to share between threads; make one per process and reuse it
(it holds one gRPC channel).
"""

import threading
import time
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import grpc

from . import _common
from ._common import EmitResult, EventLike, Payload
from ._gen.rio.v1 import emit_pb2_grpc
from .dsn import DSN
from .errors import ClientClosed, from_grpc_error
from .retry import Retry

__all__ = ["Client"]


class Client:
    """Emits events into the project of one sender DSN.

    Args:
        dsn: ``rio://SENDER:TOKEN@HOST:PORT/PROJECT`` (or ``rios://``,
            ``http://``, ``https://``; see ``rio_client.dsn``). Also accepted as
            ``DSN=`` (the original Rio's spelling). When neither is given,
            ``$RIO_DSN`` is used.
        timeout: seconds each attempt of a call may take (default 10).
        retry: the retry policy for UNAVAILABLE and DEADLINE_EXCEEDED
            (default ``Retry()``: 5 attempts; ``NO_RETRY`` disables retries).
        root_certificates: the root certificates to trust for a TLS DSN
            (``rios://``), as PEM text (bytes, or a str starting with
            ``-----BEGIN``) or the path of a PEM file; default:
            the file named by ``$RIO_TLS_CA``, else the system's roots.
        tls_server_name: the name the server's certificate must carry when it
            is not the DSN's host (e.g. connecting by IP address); default:
            ``$RIO_TLS_SERVER_NAME``, else the host.
        client_certificate, client_key: this client's certificate chain and
            private key (PEM bytes or paths), for a server that requires
            client certificates (mutual TLS); both or neither; default: the
            files named by ``$RIO_TLS_CLIENT_CERT`` and ``$RIO_TLS_CLIENT_KEY``.
        channel_options: extra ``(name, value)`` gRPC channel arguments.
        json_dumps: turns dict payloads into JSON text (default:
            ``json.dumps`` with compact separators).

    Raises:
        InvalidDSN: (a ValueError) when the DSN is missing or malformed; no
            connection is attempted.
        ValueError: TLS settings that cannot be used (an unreadable or
            non-PEM file, a certificate without its key, any TLS setting with
            a plaintext DSN).

    A server whose certificate is not trusted or not for the expected name,
    or that refuses the client's certificate, makes calls fail with
    ``Unavailable``.
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
        tls = _common.resolve_tls(
            self._dsn, root_certificates, tls_server_name, client_certificate, client_key
        )
        self._timeout, self._retry = _common.check_options(timeout, retry)
        self._dumps = json_dumps or _common.compact_json
        self._metadata = _common.auth_metadata(self._dsn)
        self._sleep = time.sleep
        options = _common.channel_options(channel_options)
        if self._dsn.tls:
            self._channel = grpc.secure_channel(
                self._dsn.target,
                _common.channel_credentials(tls),
                options=_common.tls_channel_options(tls) + options,
            )
        else:
            self._channel = grpc.insecure_channel(self._dsn.target, options=options)
        self._emit_stub = emit_pb2_grpc.EmitServiceStub(self._channel)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def dsn(self) -> "DSN":
        """The parsed DSN (its str() hides the token)."""
        return self._dsn

    @property
    def project(self) -> str:
        return self._dsn.project

    def emit(
        self,
        event: str,
        payload: Payload = None,
        *,
        idempotency_key: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> EmitResult:
        """Emits ``event`` with ``payload`` into the DSN's project.

        Returns once Rio has committed the message and one delivery per enabled
        handler. ``payload`` is a dict (sent as its ``json_dumps`` text), or JSON
        text (``str``/``bytes``) sent byte for byte. Every attempt carries the
        same idempotency key (a new UUID unless given), so a retried emit whose
        first reply was lost returns the first message with ``duplicate=True``
        instead of creating a second one.

        Raises:
            RioError: the subclass for the call's gRPC code, e.g.
                Unauthenticated (wrong token), PermissionDenied (another
                project's sender), InvalidArgument (bad event or payload),
                Unavailable / DeadlineExceeded once retries are exhausted.
            TypeError: a payload that is neither a mapping nor JSON text.
        """
        request = _common.emit_request(self._dsn, event, payload, idempotency_key, self._dumps)
        response = self._call(self._emit_stub.Emit, request, timeout)
        return _common.emit_result(response, request.idempotency_key)

    def emit_batch(
        self, events: Iterable[EventLike], *, timeout: Optional[float] = None
    ) -> List[EmitResult]:
        """Emits several events in one transaction (at most 1000); results are
        in the order of ``events``. Each event is an ``Event``, an ``(event,
        payload)`` or ``(event, payload, idempotency_key)`` tuple, or a dict with
        those keys. Retries like ``emit``: each event keeps its key across
        attempts."""
        request = _common.batch_request(self._dsn, events, self._dumps)
        response = self._call(self._emit_stub.EmitBatch, request, timeout)
        return _common.batch_results(response, request)

    def _call(self, rpc: grpc.UnaryUnaryMultiCallable, request: Any, timeout: Optional[float]) -> Any:
        """Every RPC goes through here: credentials, a deadline per attempt,
        retries with backoff, and gRPC errors turned into RioErrors."""
        if self._closed:
            raise ClientClosed("this rio_client.Client is closed")
        timeout = self._timeout if timeout is None else timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return rpc(request, timeout=timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if self._retry.should_retry(error.code(), attempt):
                    self._sleep(self._retry.backoff(attempt))
                    continue
                raise from_grpc_error(error, attempts=attempt) from error
            except ValueError as error:  # grpc's "closed channel"
                if self._closed:
                    raise ClientClosed("this rio_client.Client is closed") from error
                raise

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"rio_client.Client({str(self._dsn)!r})"
