"""Rio's Python SDK: emit events into a Rio project, and verify the webhooks
Rio calls.

    from rio_client import Client
    client = Client(DSN='rio://comments-app:TOKEN@127.0.0.1:50051/comments')
    client.emit('comment-published', {'ip': '127.0.0.1', 'content': 'I am a spammer'})

``rio_client.AsyncClient`` (``rio_client.aio``) is the asyncio client, ``rio_client.webhook``
verifies signatures, ``rio_client.flask.webhook_required`` guards Flask views.
"""

from . import errors, webhook
from ._common import EmitResult, Event
from ._version import __version__
from .aio import AsyncClient
from .client import Client
from .dsn import DSN, parse_dsn
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    ClientClosed,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    InvalidDSN,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    RioError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    WebhookVerificationError,
)
from .retry import DEFAULT_RETRY, NO_RETRY, Retry

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "EmitResult",
    "Event",
    "DSN",
    "parse_dsn",
    "Retry",
    "DEFAULT_RETRY",
    "NO_RETRY",
    "webhook",
]
# Every error class, as errors.py lists them (its helper stays internal).
__all__ += [name for name in errors.__all__ if name != "from_grpc_error"]
