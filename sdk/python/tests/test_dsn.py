"""DSN parsing and how a client finds its DSN. Malformed DSNs fail in the
constructor, before any channel exists; no server involved."""

import grpc
import grpc.aio
import pytest

import rio_client
from rio_client import InvalidArgument, InvalidDSN, RioError, parse_dsn
from rio_client.aio import AsyncClient


@pytest.mark.parametrize(
    "text, scheme, tls, host, port, sender, token, project",
    [
        ("rio://app:tok@127.0.0.1:50051/comments", "rio", False, "127.0.0.1", 50051, "app", "tok", "comments"),
        ("rios://app:tok@rio.example.org:443/comments", "rios", True, "rio.example.org", 443, "app", "tok", "comments"),
        # The seed's form: scheme http, "/1/" before the project, no port.
        ("http://sender:tok@rio.intra.example.org/1/project", "http", False, "rio.intra.example.org", 50051, "sender", "tok", "project"),
        ("https://sender:tok@rio.intra.example.org/1/project", "https", True, "rio.intra.example.org", 50051, "sender", "tok", "project"),
        ("http://s:t@h:8443/a/b/c/project/", "http", False, "h", 8443, "s", "t", "project"),
        ("rio://app:tok@h/p", "rio", False, "h", 50051, "app", "tok", "p"),
        ("RIO://app:tok@H.Example.ORG/p", "rio", False, "h.example.org", 50051, "app", "tok", "p"),
        ("rio://a.b_c-d:t%2Fk%40@[::1]:7/x.y_z-1", "rio", False, "::1", 7, "a.b_c-d", "t/k@", "x.y_z-1"),
        ("  rio://app:tok@h/p\n", "rio", False, "h", 50051, "app", "tok", "p"),
    ],
)
def test_valid_dsns(text, scheme, tls, host, port, sender, token, project):
    dsn = parse_dsn(text)
    assert (dsn.scheme, dsn.tls, dsn.host, dsn.port, dsn.sender, dsn.token, dsn.project) == (
        scheme, tls, host, port, sender, token, project)


def test_target_brackets_ipv6():
    assert parse_dsn("rio://a:b@[::1]:7/p").target == "[::1]:7"
    assert parse_dsn("rio://a:b@h/p").target == "h:50051"


def test_str_and_repr_hide_the_token():
    dsn = parse_dsn("rio://app:s3cr3t@h:1/p")
    assert "s3cr3t" not in str(dsn) and "s3cr3t" not in repr(dsn)
    assert str(dsn) == "rio://app:***@h:1/p"
    assert "s3cr3t" not in repr(rio_client.Client("rio://app:s3cr3t@h:1/p"))


MALFORMED = [
    ("", "empty"),
    ("   ", "empty"),
    ("app:s3cr3t@h/p", "no scheme"),
    ("ftp://app:s3cr3t@h/p", "scheme 'ftp'"),
    ("grpc://app:s3cr3t@h/p", "scheme 'grpc'"),
    ("rio://h:50051/p", "no sender name"),
    ("rio://app@h/p", "no token"),
    ("rio://app:@h/p", "no token"),
    ("rio://app:s3cr3t@/p", "no host"),
    ("rio://app:s3cr3t@h:0/p", "port 0"),
    ("rio://app:s3cr3t@h:65536/p", "invalid port"),
    ("rio://app:s3cr3t@h:http/p", "invalid port"),
    ("rio://app:s3cr3t@h:/p", "empty port"),
    ("rio://app:s3cr3t@h", "names no project"),
    ("rio://app:s3cr3t@h/", "names no project"),
    ("rio://app:s3cr3t@h//", "names no project"),
    ("rio://app:s3cr3t@h/has space", "names project 'has space'"),
    ("rio://app:s3cr3t@s3cr3t@h/has space", "names project 'has space'"),
    ("rio://app:s3cr3t@h/p?timeout=1", "query or fragment"),
    ("rio://app:s3cr3t@h/p#x", "query or fragment"),
    ("rio://bad name:s3cr3t@h/p", "sender name 'bad name'"),
    ("rio://me@corp:s3cr3t@h/p", "sender name 'me@corp'"),
    ("rio://app:s3cr3t@[::1/p", "not a URL"),
]


@pytest.mark.parametrize("text, message", MALFORMED)
def test_malformed_dsn_is_a_clear_error(text, message):
    with pytest.raises(InvalidDSN, match=message) as info:
        parse_dsn(text)
    assert "s3cr3t" not in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, InvalidArgument)
    assert isinstance(info.value, RioError)


def test_non_string_dsn_is_a_clear_error():
    with pytest.raises(InvalidDSN, match="must be a string"):
        parse_dsn(b"rio://a:b@h/p")


@pytest.fixture
def no_channels(monkeypatch):
    """Fails the test if anything opens a gRPC channel."""
    def forbidden(*args, **kwargs):
        raise AssertionError("a channel was created for a malformed DSN")
    for module in (grpc, grpc.aio):
        monkeypatch.setattr(module, "insecure_channel", forbidden)
        monkeypatch.setattr(module, "secure_channel", forbidden)


@pytest.mark.parametrize("text, message", MALFORMED)
def test_client_rejects_malformed_dsn_before_any_network_call(text, message, no_channels):
    with pytest.raises(InvalidDSN, match=message):
        rio_client.Client(text)
    with pytest.raises(InvalidDSN, match=message):
        rio_client.Client(DSN=text)
    with pytest.raises(InvalidDSN, match=message):
        AsyncClient(dsn=text)


def test_client_takes_the_dsn_every_way(monkeypatch):
    monkeypatch.setenv("RIO_DSN", "rio://env:t@env-host/env-project")
    assert rio_client.Client("rio://a:t@h/positional").project == "positional"
    assert rio_client.Client(dsn="rio://a:t@h/keyword").project == "keyword"
    assert rio_client.Client(DSN="http://a:t@h/1/seed").project == "seed"
    assert rio_client.Client().project == "env-project"
    assert AsyncClient().project == "env-project"
    assert AsyncClient(DSN="http://a:t@h/1/seed").project == "seed"


def test_no_dsn_anywhere_is_a_clear_error(monkeypatch, no_channels):
    monkeypatch.delenv("RIO_DSN", raising=False)
    with pytest.raises(InvalidDSN, match="no DSN: pass Client.*or set RIO_DSN"):
        rio_client.Client()
    monkeypatch.setenv("RIO_DSN", "")
    with pytest.raises(InvalidDSN, match="no DSN"):
        rio_client.Client()


def test_malformed_rio_dsn_environment_is_a_clear_error(monkeypatch, no_channels):
    monkeypatch.setenv("RIO_DSN", "rio://app:s3cr3t@h")
    with pytest.raises(InvalidDSN, match="names no project"):
        rio_client.Client()


def test_two_different_dsn_arguments_are_refused():
    with pytest.raises(TypeError, match="both dsn= and DSN="):
        rio_client.Client(dsn="rio://a:t@h/p", DSN="rio://a:t@h/q")


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="timeout"):
        rio_client.Client("rio://a:t@h/p", timeout=0)
    with pytest.raises(TypeError, match="retry"):
        rio_client.Client("rio://a:t@h/p", retry=3)
    with pytest.raises(ValueError, match="max_attempts"):
        rio_client.Retry(max_attempts=0)
