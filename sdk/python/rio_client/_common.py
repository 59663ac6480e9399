"""What the blocking and the asyncio clients share: configuration, requests
and results. No I/O happens here."""

import base64
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import grpc

from ._gen.rio.v1 import emit_pb2
from ._version import __version__
from .dsn import DSN, parse_dsn
from .errors import InvalidDSN
from .retry import DEFAULT_RETRY, Retry

DEFAULT_TIMEOUT = 10.0
ENV_DSN = "RIO_DSN"
ENV_TLS_CA = "RIO_TLS_CA"
ENV_TLS_SERVER_NAME = "RIO_TLS_SERVER_NAME"
ENV_TLS_CLIENT_CERT = "RIO_TLS_CLIENT_CERT"
ENV_TLS_CLIENT_KEY = "RIO_TLS_CLIENT_KEY"

# PEM text (bytes, or a str that starts with -----BEGIN), or the path of a
# PEM file.
Pem = Union[bytes, str, "os.PathLike[str]"]

Payload = Union[Mapping[str, Any], str, bytes, None]


@dataclass(frozen=True)
class EmitResult:
    """What Rio answered to an emit.

    Attributes:
        message_id: the message's id (the ``webhook-id`` receivers get).
        handlers: deliveries created, one per enabled handler of the event.
        duplicate: True when the idempotency key matched an earlier message;
            then nothing new was created and ``message_id`` is the earlier one.
        idempotency_key: the key the emit was sent with.
    """

    message_id: str
    handlers: int
    duplicate: bool
    idempotency_key: str


@dataclass(frozen=True)
class Event:
    """One event of an emit_batch. Plain ``(event, payload)`` or ``(event,
    payload, idempotency_key)`` tuples work as well."""

    event: str
    payload: Payload = None
    idempotency_key: Optional[str] = None


EventLike = Union[Event, Tuple[str, Payload], Tuple[str, Payload, Optional[str]], Mapping[str, Any]]


def resolve_dsn(dsn: Optional[str], dsn_upper: Optional[str]) -> DSN:
    """The DSN from the arguments, else from $RIO_DSN (explicit beats
    environment)."""
    if dsn is not None and dsn_upper is not None and dsn != dsn_upper:
        raise TypeError("Client() got both dsn= and DSN=; pass one")
    text = dsn if dsn is not None else dsn_upper
    if text is None:
        text = os.environ.get(ENV_DSN)
        if not text:
            raise InvalidDSN(
                "no DSN: pass Client('rio://SENDER:TOKEN@HOST:PORT/PROJECT') "
                f"or set {ENV_DSN}"
            )
    return parse_dsn(text)


def check_options(timeout: Optional[float], retry: Optional[Retry]) -> Tuple[float, Retry]:
    timeout = DEFAULT_TIMEOUT if timeout is None else timeout
    if not timeout > 0:
        raise ValueError("timeout must be a positive number of seconds")
    retry = DEFAULT_RETRY if retry is None else retry
    if not isinstance(retry, Retry):
        raise TypeError("retry must be a rio_client.Retry")
    return float(timeout), retry


def auth_metadata(dsn: DSN) -> Tuple[Tuple[str, str], ...]:
    basic = base64.b64encode(f"{dsn.sender}:{dsn.token}".encode()).decode("ascii")
    return (("authorization", f"Basic {basic}"),)


def channel_options(extra: Sequence[Tuple[str, Any]]) -> List[Tuple[str, Any]]:
    options = [
        ("grpc.primary_user_agent", f"rio-python/{__version__}"),
        # gRPC waits up to 2 minutes before reconnecting after a failure by
        # default, which would make every retry fail fast: keep reconnection
        # attempts about as frequent as our own retries. The minimum backoff
        # stays at its default: gRPC also uses it as the time one connection
        # attempt (TCP and TLS handshake) may take.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
    options.extend(extra)
    return options


@dataclass(frozen=True)
class TlsSettings:
    """What a TLS channel uses; None where the default applies."""

    root_certificates: Optional[bytes] = None
    certificate_chain: Optional[bytes] = None
    private_key: Optional[bytes] = None
    server_name: Optional[str] = None

    def any(self) -> bool:
        return any(v is not None for v in
                   (self.root_certificates, self.certificate_chain, self.private_key,
                    self.server_name))


def _read_pem(value: Optional[Pem], argument: str, variable: str) -> Optional[bytes]:
    """``value`` (PEM bytes, or a path), else the file named by $variable."""
    source = argument
    if value is None:
        path = os.environ.get(variable)
        if not path:
            return None
        value, source = path, f"{variable}={path}"
    if isinstance(value, bytes):
        pem = value
    elif isinstance(value, str) and value.lstrip().startswith("-----BEGIN "):
        pem = value.encode("ascii")
    elif isinstance(value, (str, os.PathLike)):
        if source == argument:
            source = f"{argument}={os.fspath(value)!r}"
        try:
            with open(value, "rb") as f:
                pem = f.read()
        except OSError as error:
            raise ValueError(f"{source}: cannot read the file: {error.strerror}") from error
    else:
        raise TypeError(
            f"{argument} must be PEM bytes or the path of a PEM file, not {type(value).__name__}"
        )
    if b"-----BEGIN " not in pem:
        raise ValueError(f"{source} is not PEM (no -----BEGIN line)")
    return pem


def resolve_tls(
    dsn: DSN,
    root_certificates: Optional[Pem],
    tls_server_name: Optional[str],
    client_certificate: Optional[Pem],
    client_key: Optional[Pem],
) -> TlsSettings:
    """The TLS settings from the arguments, each else from its RIO_TLS_*
    variable. Raises ValueError for an unreadable or non-PEM file, a
    certificate without its key (or the reverse), and TLS settings with a
    plaintext DSN."""
    settings = TlsSettings(
        root_certificates=_read_pem(root_certificates, "root_certificates", ENV_TLS_CA),
        certificate_chain=_read_pem(client_certificate, "client_certificate", ENV_TLS_CLIENT_CERT),
        private_key=_read_pem(client_key, "client_key", ENV_TLS_CLIENT_KEY),
        server_name=tls_server_name or os.environ.get(ENV_TLS_SERVER_NAME) or None,
    )
    if (settings.certificate_chain is None) != (settings.private_key is None):
        raise ValueError(
            "a client certificate needs its private key and the reverse: pass both "
            "client_certificate and client_key (or set RIO_TLS_CLIENT_CERT and "
            "RIO_TLS_CLIENT_KEY), or neither"
        )
    if settings.any() and not dsn.tls:
        raise ValueError(
            "TLS settings (root certificates, server name or client certificate, given or "
            f"from RIO_TLS_*) need a TLS DSN, but '{dsn}' is plaintext: use rios://"
        )
    return settings


def tls_channel_options(tls: TlsSettings) -> List[Tuple[str, Any]]:
    if tls.server_name is None:
        return []
    return [("grpc.ssl_target_name_override", tls.server_name)]


def channel_credentials(tls: TlsSettings) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=tls.root_certificates,
        private_key=tls.private_key,
        certificate_chain=tls.certificate_chain,
    )


def encode_payload(payload: Payload, dumps: Callable[[Any], str]) -> str:
    """The payload as the JSON text to send (kept byte for byte by Rio)."""
    if payload is None:
        return "{}"
    if isinstance(payload, bytes):
        return payload.decode("utf-8")
    if isinstance(payload, str):
        return payload
    if isinstance(payload, Mapping):
        return dumps(payload)
    raise TypeError(
        "payload must be a dict (or other mapping), or JSON text as str or bytes, "
        f"not {type(payload).__name__}"
    )


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def emit_request(
    dsn: DSN, event: str, payload: Payload, idempotency_key: Optional[str], dumps: Callable[[Any], str]
) -> emit_pb2.EmitRequest:
    if not isinstance(event, str):
        raise TypeError(f"event must be a str, not {type(event).__name__}")
    return emit_pb2.EmitRequest(
        project=dsn.project,
        event=event,
        payload_json=encode_payload(payload, dumps),
        idempotency_key=idempotency_key if idempotency_key is not None else new_idempotency_key(),
    )


def to_event(item: EventLike) -> Event:
    if isinstance(item, Event):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"event", "payload", "idempotency_key"}
        if unknown or "event" not in item:
            raise TypeError(
                "a batch event mapping has the keys event, payload and idempotency_key; "
                f"got {sorted(item)}"
            )
        return Event(item["event"], item.get("payload"), item.get("idempotency_key"))
    if isinstance(item, tuple) and len(item) in (2, 3):
        return Event(*item)
    raise TypeError(
        "batch events are rio_client.Event, (event, payload) or "
        f"(event, payload, idempotency_key); got {item!r}"
    )


def batch_request(
    dsn: DSN, events: Iterable[EventLike], dumps: Callable[[Any], str]
) -> emit_pb2.EmitBatchRequest:
    requests = []
    for item in events:
        e = to_event(item)
        requests.append(emit_request(dsn, e.event, e.payload, e.idempotency_key, dumps))
    return emit_pb2.EmitBatchRequest(events=requests)


def emit_result(response: emit_pb2.EmitResponse, idempotency_key: str) -> EmitResult:
    return EmitResult(
        message_id=response.message_id,
        handlers=response.handlers,
        duplicate=response.duplicate,
        idempotency_key=idempotency_key,
    )


def batch_results(
    response: emit_pb2.EmitBatchResponse, request: emit_pb2.EmitBatchRequest
) -> List[EmitResult]:
    return [
        emit_result(r, e.idempotency_key) for r, e in zip(response.results, request.events)
    ]
