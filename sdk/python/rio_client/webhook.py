"""Verifying the requests Rio sends to webhooks (Standard Webhooks).

Each request carries ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.content)> ...``
(one entry per valid secret, two while a secret rotation overlaps), where
``key`` is the base64-decoded part of the handler's ``whsec_`` secret and
``content`` the raw body of a POST or PUT, or the raw query string of a GET
(the bytes after ``?`` exactly as sent: a GET handler gets the payload there,
and an empty body).

    from rio_client import webhook
    if not webhook.verify(SECRET, request.headers, request.get_data()):
        abort(401)
    # a GET handler:
    if not webhook.verify(SECRET, request.headers, request.query_string):
        abort(401)

Verify the raw bytes, before any parsing. Receivers should also dedupe on
``webhook-id``: it stays the same across retries. The Flask decorator
(``rio_client.flask``) picks the body or the query string itself.
"""

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any, Iterable, Optional, Union

from .errors import WebhookVerificationError

__all__ = [
    "verify",
    "check",
    "sign",
    "signed_content",
    "DEFAULT_TOLERANCE",
    "WebhookVerificationError",
]

DEFAULT_TOLERANCE = 300  # seconds, either side of now
_PREFIX = "whsec_"
# Unix seconds have 10 digits until the year 2286; a longer value is refused
# before int() (whose digit limit raises ValueError) or float arithmetic
# (OverflowError) see it.
_MAX_TIMESTAMP_DIGITS = 20

Secrets = Union[str, Iterable[str]]


def _key(secret: str) -> bytes:
    if not isinstance(secret, str):
        raise TypeError(f"a webhook secret is a str like 'whsec_...', not {type(secret).__name__}")
    encoded = secret[len(_PREFIX):] if secret.startswith(_PREFIX) else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("the webhook secret is not base64 after 'whsec_'") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _keys(secret: Secrets) -> list:
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("no webhook secret given")
    return [_key(s) for s in secrets]


def _header(headers: Any, name: str) -> Optional[str]:
    """Looks ``name`` up case-insensitively in a header mapping, a WSGI environ
    (``HTTP_WEBHOOK_ID``) or a list of (name, value) pairs."""
    if hasattr(headers, "get"):
        value = headers.get(name)
        if value is None:
            value = headers.get("HTTP_" + name.upper().replace("-", "_"))
        if value is not None:
            return value if isinstance(value, str) else ", ".join(value)
        items = headers.items()
    else:
        items = headers
    wanted = name.lower()
    for key, value in items:
        if isinstance(key, str) and key.lower() == wanted:
            return value
    return None


def _signature(key: bytes, msg_id: bytes, timestamp: str, content: bytes) -> bytes:
    signed = msg_id + b"." + timestamp.encode() + b"." + content
    return base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())


def signed_content(
    method: str, body: Union[bytes, str], query_string: Union[bytes, str]
) -> Union[bytes, str]:
    """What Rio signs for a request: the raw query string for ``GET`` (Rio
    sends a GET handler the payload there, with an empty body), else the raw
    body. Pass the query string undecoded, as received (Flask's
    ``request.query_string``, WSGI's ``environ['QUERY_STRING']``)."""
    return query_string if method.upper() == "GET" else body


def sign(
    secret: str, msg_id: str, timestamp: Union[int, str], body: Union[bytes, str]
) -> str:
    """The ``v1,<signature>`` entry Rio sends for this request (useful to test
    a receiver). ``body`` is the signed content: for a GET, the query string."""
    if isinstance(body, str):
        body = body.encode()
    return "v1," + _signature(_key(secret), msg_id.encode(), str(timestamp), body).decode(
        "ascii"
    )


def check(
    secret: Secrets,
    headers: Any,
    body: Union[bytes, str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Optional[float] = None,
) -> None:
    """Raises WebhookVerificationError, saying why, unless the request is
    signed with ``secret`` (or any of several secrets) and its timestamp is
    within ``tolerance`` seconds of ``now``.

    ``headers`` is any mapping (case-insensitive lookup; Flask's
    ``request.headers``, a dict, a WSGI environ); ``body`` the signed
    content: the raw body bytes, or for a GET request the raw query string
    (``request.query_string``; see ``signed_content``). Every ``v1`` entry
    is compared in constant time. Whatever the headers hold, a request that
    does not verify raises WebhookVerificationError, never another error.

    Raises:
        ValueError: a secret that is not ``whsec_`` + base64 (a setup error,
            not a bad request).
    """
    keys = _keys(secret)
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    for name, value in (
        ("webhook-id", msg_id),
        ("webhook-timestamp", timestamp),
        ("webhook-signature", signatures),
    ):
        if not value:
            raise WebhookVerificationError(f"missing {name} header")
    timestamp = timestamp.strip()
    if (
        not timestamp.isascii()
        or not timestamp.isdigit()
        or len(timestamp) > _MAX_TIMESTAMP_DIGITS
    ):
        raise WebhookVerificationError("webhook-timestamp is not unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookVerificationError(
            "webhook-timestamp is more than %d seconds from now (replayed, or a clock is off)"
            % tolerance
        )
    try:
        msg_id_bytes = msg_id.encode()
    except UnicodeEncodeError:  # a lone surrogate
        raise WebhookVerificationError("webhook-id is not valid text") from None
    if isinstance(body, str):
        body = body.encode()
    expected = [_signature(key, msg_id_bytes, timestamp, body) for key in keys]
    matched = False
    # No early exit: every entry is compared against every key.
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        candidate = value.encode("ascii", "replace")
        for e in expected:
            matched |= hmac.compare_digest(e, candidate)
    if not matched:
        raise WebhookVerificationError("no webhook-signature entry matches the secret")


def verify(
    secret: Secrets,
    headers: Any,
    body: Union[bytes, str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: Optional[float] = None,
) -> bool:
    """True when the request is signed with ``secret`` (or one of several) and
    fresh; see ``check`` for the arguments (``body``: the raw body, or a GET's
    raw query string) and for an exception saying why."""
    try:
        check(secret, headers, body, tolerance=tolerance, now=now)
    except WebhookVerificationError:
        return False
    return True
