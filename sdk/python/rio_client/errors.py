"""The exceptions raised by rio_client.

Every exception the SDK raises derives from :class:`RioError`. A failed call
raises the subclass named after its gRPC status code (``Unauthenticated``,
``Unavailable``, ...); the original ``grpc.RpcError`` is kept both as
``grpc_error`` and as ``__cause__``. Errors found before any network call
(a malformed DSN) raise :class:`InvalidDSN`, which is also a ``ValueError``.
"""

from typing import Dict, Optional, Type

import grpc

__all__ = [
    "RioError",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
    "InvalidDSN",
    "ClientClosed",
    "WebhookVerificationError",
    "from_grpc_error",
]


class RioError(Exception):
    """Base class of every error raised by rio_client.

    Attributes:
        message: what went wrong, for people.
        code: the ``grpc.StatusCode`` of a failed call; None for errors that
            did not come from the server.
        grpc_error: the original ``grpc.RpcError``, or None.
        attempts: how many times the call was tried (retries included), or
            None when no call was made.
    """

    code: Optional[grpc.StatusCode] = None

    def __init__(
        self,
        message: str,
        *,
        grpc_error: Optional[grpc.RpcError] = None,
        attempts: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.grpc_error = grpc_error
        self.attempts = attempts


class Cancelled(RioError):
    code = grpc.StatusCode.CANCELLED


class Unknown(RioError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(RioError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(RioError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(RioError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RioError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(RioError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(RioError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RioError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(RioError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(RioError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(RioError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(RioError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(RioError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(RioError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(RioError):
    code = grpc.StatusCode.UNAUTHENTICATED


class InvalidDSN(InvalidArgument, ValueError):
    """The DSN is missing or malformed; raised before any network call."""

    code = None


class ClientClosed(RioError):
    """A call on a client after close()."""


class WebhookVerificationError(RioError):
    """A webhook request whose signature or timestamp does not verify."""


_BY_CODE: Dict[grpc.StatusCode, Type[RioError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


def from_grpc_error(error: grpc.RpcError, attempts: Optional[int] = None) -> RioError:
    """The RioError for a failed call (raise it ``from error``)."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = error.details() if callable(getattr(error, "details", None)) else None
    cls = _BY_CODE.get(code, Unknown)
    name = code.name if code is not None else "UNKNOWN"
    message = f"{name}: {details or 'no details'}"
    if attempts is not None and attempts > 1:
        message += f" (after {attempts} attempts)"
    return cls(message, grpc_error=error, attempts=attempts)
