"""The clients over TLS and mutual TLS to a real rio-server started with
certificates made by openssl for the test: a custom CA, an expected server
name, a client certificate, the RIO_TLS_* variables, and the handshakes
that must fail."""

import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from typing import Dict, Iterator

import grpc
import pytest

import rio_client
import support
from rio_client import Client, Unavailable
from rio_client.aio import AsyncClient

EVENT = "comment-published"
TLS_VARIABLES = ("RIO_TLS_CA", "RIO_TLS_SERVER_NAME", "RIO_TLS_CLIENT_CERT", "RIO_TLS_CLIENT_KEY")


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def certs() -> Iterator[Dict[str, str]]:
    directory = tempfile.mkdtemp(prefix="rio-sdk-certs.")
    yield support.make_test_certificates(directory)
    shutil.rmtree(directory, ignore_errors=True)


def start(pg: support.PgCluster, certs: Dict[str, str], mtls: bool) -> support.ServerProcess:
    binary = os.environ.get("RIO_SERVER_BINARY")
    if not binary:
        pytest.fail("set RIO_SERVER_BINARY to a built rio-server", pytrace=False)
    args = ["--tls_cert", certs["server.pem"], "--tls_key", certs["server.key"]]
    if mtls:
        args += ["--tls_client_ca", certs["ca.pem"]]
    return support.ServerProcess(binary, pg.url(pg.create_database("rio_sdk_python_tls")), args)


@pytest.fixture(scope="module")
def tls_server(pg, certs) -> Iterator[support.ServerProcess]:
    server = start(pg, certs, mtls=False)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mtls_server(pg, certs) -> Iterator[support.ServerProcess]:
    server = start(pg, certs, mtls=True)
    yield server
    server.stop()


def tls_sender(server: support.ServerProcess, certs: Dict[str, str], mtls: bool) -> support.Sender:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(certs["ca.pem"]),
        private_key=read(certs["client.key"]) if mtls else None,
        certificate_chain=read(certs["client.pem"]) if mtls else None,
    )
    admin = support.Admin(server.grpc_address, credentials)
    try:
        return admin.create_sender(admin.create_project())
    finally:
        admin.close()


@pytest.fixture(autouse=True)
def no_tls_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TLS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_emit_over_tls_with_the_test_ca(tls_server, certs):
    sender = tls_sender(tls_server, certs, mtls=False)
    assert sender.dsn.startswith("rios://")
    # The CA as PEM bytes, as PEM text, and as a path.
    for ca in (read(certs["ca.pem"]), read(certs["ca.pem"]).decode(), certs["ca.pem"]):
        with Client(sender.dsn, root_certificates=ca) as client:
            result = client.emit(EVENT, {"n": 1})
            assert (result.handlers, result.duplicate) == (0, False)


class SlowRelay:
    """A TCP relay on 127.0.0.1 whose connections wait `delay` seconds (a slow
    network path) before their bytes flow to 127.0.0.1:`upstream_port`."""

    def __init__(self, upstream_port: int, delay: float):
        self.upstream_port, self.delay = upstream_port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        time.sleep(self.delay)  # the slow path being simulated
        with client, socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
            with selectors.DefaultSelector() as selector:
                selector.register(client, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, client)
                while True:
                    for key, _ in selector.select():
                        data = key.fileobj.recv(16384)
                        if not data:
                            return
                        key.data.sendall(data)

    def close(self) -> None:
        self.listener.close()


def test_a_handshake_slower_than_the_reconnect_backoff_still_connects(tls_server, certs):
    sender = tls_sender(tls_server, certs, mtls=False)
    port = tls_server.grpc_address.rsplit(":", 1)[1]
    relay = SlowRelay(int(port), 0.7)
    try:
        dsn = sender.dsn.replace(f":{port}/", f":{relay.port}/")
        with Client(dsn, root_certificates=certs["ca.pem"], retry=rio_client.NO_RETRY) as client:
            assert client.emit(EVENT, {"n": 1}).handlers == 0
    finally:
        relay.close()


def test_a_client_that_does_not_trust_the_ca_is_refused(tls_server, certs):
    sender = tls_sender(tls_server, certs, mtls=False)
    for ca in (certs["other-ca.pem"], None):  # another CA; the system's roots
        with Client(sender.dsn, root_certificates=ca, retry=rio_client.NO_RETRY) as client:
            with pytest.raises(Unavailable) as info:
                client.emit(EVENT, {})
            assert info.value.code == grpc.StatusCode.UNAVAILABLE


def test_the_server_name_is_checked_and_can_be_overridden(tls_server, certs):
    sender = tls_sender(tls_server, certs, mtls=False)
    with Client(sender.dsn, root_certificates=certs["ca.pem"], tls_server_name="localhost") as client:
        assert client.emit(EVENT, {}).handlers == 0
    with Client(sender.dsn, root_certificates=certs["ca.pem"], tls_server_name="rio.example.com",
                retry=rio_client.NO_RETRY) as client:
        with pytest.raises(Unavailable):
            client.emit(EVENT, {})


def test_mutual_tls_needs_a_client_certificate_of_the_ca(mtls_server, certs):
    sender = tls_sender(mtls_server, certs, mtls=True)
    ca = certs["ca.pem"]
    with Client(sender.dsn, root_certificates=ca, client_certificate=certs["client.pem"],
                client_key=read(certs["client.key"])) as client:
        assert client.emit(EVENT, {"mtls": True}).handlers == 0
    with Client(sender.dsn, root_certificates=ca, retry=rio_client.NO_RETRY) as client:
        with pytest.raises(Unavailable):
            client.emit(EVENT, {})
    with Client(sender.dsn, root_certificates=ca, client_certificate=certs["other-client.pem"],
                client_key=certs["other-client.key"], retry=rio_client.NO_RETRY) as client:
        with pytest.raises(Unavailable):
            client.emit(EVENT, {})


def test_tls_settings_come_from_the_environment(mtls_server, certs, monkeypatch):
    sender = tls_sender(mtls_server, certs, mtls=True)
    monkeypatch.setenv("RIO_TLS_CA", certs["ca.pem"])
    monkeypatch.setenv("RIO_TLS_CLIENT_CERT", certs["client.pem"])
    monkeypatch.setenv("RIO_TLS_CLIENT_KEY", certs["client.key"])
    monkeypatch.setenv("RIO_TLS_SERVER_NAME", "localhost")
    monkeypatch.setenv("RIO_DSN", sender.dsn)
    with Client() as client:
        assert client.emit(EVENT, {"env": True}).handlers == 0


def test_asyncio_client_over_mutual_tls(mtls_server, certs):
    import asyncio

    sender = tls_sender(mtls_server, certs, mtls=True)

    async def emit() -> int:
        async with AsyncClient(sender.dsn, root_certificates=certs["ca.pem"],
                               client_certificate=certs["client.pem"],
                               client_key=certs["client.key"]) as client:
            return (await client.emit(EVENT, {"aio": True})).handlers

    assert asyncio.run(emit()) == 0


def test_unusable_tls_settings_are_refused_before_any_call(certs, monkeypatch):
    dsn = "rios://app:token@127.0.0.1:1/p"
    with pytest.raises(ValueError) as info:
        Client(dsn, client_certificate=certs["client.pem"])
    assert str(info.value) == (
        "a client certificate needs its private key and the reverse: pass both "
        "client_certificate and client_key (or set RIO_TLS_CLIENT_CERT and "
        "RIO_TLS_CLIENT_KEY), or neither")
    with pytest.raises(ValueError) as info:
        Client(dsn, root_certificates=b"not pem")
    assert str(info.value) == "root_certificates is not PEM (no -----BEGIN line)"
    missing = certs["ca.pem"] + ".missing"
    with pytest.raises(ValueError) as info:
        Client(dsn, root_certificates=missing)
    assert str(info.value) == (
        f"root_certificates={missing!r}: cannot read the file: No such file or directory")
    monkeypatch.setenv("RIO_TLS_CA", missing)
    with pytest.raises(ValueError) as info:
        Client(dsn)
    assert str(info.value) == (
        f"RIO_TLS_CA={missing}: cannot read the file: No such file or directory")
    # A plaintext DSN with TLS settings is a mistake, not a silent downgrade.
    monkeypatch.setenv("RIO_TLS_CA", certs["ca.pem"])
    with pytest.raises(ValueError) as info:
        Client("rio://app:token@127.0.0.1:1/p")
    assert str(info.value) == (
        "TLS settings (root certificates, server name or client certificate, given or from "
        "RIO_TLS_*) need a TLS DSN, but 'rio://app:***@127.0.0.1:1/p' is plaintext: use rios://")
