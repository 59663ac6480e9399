"""Sender DSNs: where Rio is and which credential emits into which project.

    rio://SENDER:TOKEN@HOST:PORT/PROJECT      plaintext gRPC
    rios://SENDER:TOKEN@HOST:PORT/PROJECT     gRPC over TLS
    http://SENDER:TOKEN@HOST/1/PROJECT        the original Rio's form: http is
    https://SENDER:TOKEN@HOST/1/PROJECT       plaintext, https is TLS

The last path segment is the project; the port defaults to 50051.
"""

import re
import urllib.parse
from dataclasses import dataclass, field

from .errors import InvalidDSN

__all__ = ["DSN", "parse_dsn", "DEFAULT_PORT"]

DEFAULT_PORT = 50051
_PLAINTEXT_SCHEMES = ("rio", "http")
_TLS_SCHEMES = ("rios", "https")
# Rio's rule for slugs and sender names.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_FORM = "rio://SENDER:TOKEN@HOST:PORT/PROJECT"


def _redact(text: str) -> str:
    """`text` with the token of a DSN-looking string replaced by ***."""
    # As when the DSN is parsed, the sender runs to the first ':' and the
    # token to the last '@' before any '/', so that a token is hidden whole
    # even when it or the sender has an '@' in it.
    return re.sub(r"((?:^|://)[^:/]*:)[^/]*@", r"\1***@", text)


@dataclass(frozen=True)
class DSN:
    """A parsed sender DSN. ``str()`` and ``repr()`` never show the token."""

    scheme: str
    host: str
    port: int
    sender: str
    token: str = field(repr=False)
    project: str

    @property
    def tls(self) -> bool:
        return self.scheme in _TLS_SCHEMES

    @property
    def target(self) -> str:
        """``host:port`` as gRPC takes it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.sender}:***@{self.target}/{self.project}"


def parse_dsn(text: str) -> DSN:
    """Parses a sender DSN.

    Raises:
        InvalidDSN: (a ValueError) naming what is wrong; the message never
            contains the token.
    """
    if not isinstance(text, str):
        raise InvalidDSN(f"a DSN must be a string like {_FORM}, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise InvalidDSN(f"the DSN is empty; expected {_FORM}")
    shown = _redact(text)
    if "://" not in text:
        raise InvalidDSN(f"DSN {shown!r} has no scheme; expected {_FORM}")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as e:  # e.g. an unbalanced IPv6 bracket
        raise InvalidDSN(f"DSN {shown!r} is not a URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in _PLAINTEXT_SCHEMES + _TLS_SCHEMES:
        raise InvalidDSN(
            f"DSN {shown!r} has scheme {parts.scheme!r}; use rio:// or http:// "
            "(plaintext), rios:// or https:// (TLS)"
        )
    if parts.query or parts.fragment:
        raise InvalidDSN(f"DSN {shown!r} may not have a query or fragment; expected {_FORM}")
    if not parts.username:
        raise InvalidDSN(f"DSN {shown!r} has no sender name; expected {_FORM}")
    if parts.password is None or parts.password == "":
        raise InvalidDSN(f"DSN {shown!r} has no token after the sender name; expected {_FORM}")
    sender = urllib.parse.unquote(parts.username)
    token = urllib.parse.unquote(parts.password)
    if not _NAME.fullmatch(sender):
        raise InvalidDSN(
            f"DSN {shown!r} has sender name {sender!r}; "
            "use 1-128 letters, digits, '.', '_' or '-'"
        )
    host = parts.hostname
    if not host:
        raise InvalidDSN(f"DSN {shown!r} has no host; expected {_FORM}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidDSN(f"DSN {shown!r} has an invalid port; use 1-65535") from None
    if port is None:
        if parts.netloc.endswith(":"):
            raise InvalidDSN(f"DSN {shown!r} has an empty port; use 1-65535 or leave it out")
        port = DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise InvalidDSN(f"DSN {shown!r} has port {port}; use 1-65535")
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise InvalidDSN(
            f"DSN {shown!r} names no project (the last path segment); expected {_FORM}"
        )
    project = urllib.parse.unquote(segments[-1])
    if not _NAME.fullmatch(project):
        raise InvalidDSN(
            f"DSN {shown!r} names project {project!r}; "
            "use 1-128 letters, digits, '.', '_' or '-'"
        )
    return DSN(scheme=scheme, host=host, port=port, sender=sender, token=token, project=project)
