"""Test kit for the Python SDK's tests: a PostgreSQL cluster, the real
rio-server binary, the admin API through the generated stubs, an HTTP
receiver that records what Rio sends, and a gRPC proxy that loses or delays
replies on demand.

Nothing here is mocked: the server is $RIO_SERVER_BINARY, the database a real
PostgreSQL (the cluster at 127.0.0.1:$RIO_TEST_PG_PORT that tools/test
starts, or a private one started here), receivers real HTTP servers.
"""

import atexit
import base64
import contextlib
import sys
import http.server
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent import futures
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc

from rio_client.v1 import emit_pb2, handler_pb2, handler_pb2_grpc, project_pb2, project_pb2_grpc

ADMIN_TOKEN = "sdk-test-admin-token-0123456789abcdef"
READY = re.compile(r"rio-server: ready grpc=(\S+) http=(\S+)")


def wait_for(condition: Callable[[], bool], timeout: float = 15.0, interval: float = 0.02) -> bool:
    """Polls ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def free_port() -> int:
    """A port nothing listens on right now (for "server down" tests and for
    processes that cannot report the port they bound)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(argv: List[str]) -> List[str]:
    # initdb and pg_ctl refuse to run as root.
    return ["runuser", "-u", "postgres", "--"] + argv if os.geteuid() == 0 else argv


class PgCluster:
    """The PostgreSQL the tests use: $RIO_TEST_PG_PORT's cluster when set,
    else a private one in a temporary directory, stopped by close()."""

    def __init__(self) -> None:
        self._dir: Optional[str] = None
        env_port = os.environ.get("RIO_TEST_PG_PORT")
        if env_port:
            self.port = int(env_port)
            return
        bindirs = sorted(
            (d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int
        ) if os.path.isdir("/usr/lib/postgresql") else []
        bindir = os.environ.get("RIO_PG_BINDIR") or (
            f"/usr/lib/postgresql/{bindirs[-1]}/bin" if bindirs else None
        )
        if not bindir:
            raise RuntimeError("RIO_TEST_PG_PORT is unset and no PostgreSQL is installed")
        self._bindir = bindir
        self._dir = tempfile.mkdtemp(prefix="rio-sdk-pg.")
        os.chmod(self._dir, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self._dir, "postgres")
        data = os.path.join(self._dir, "data")
        subprocess.run(
            _as_postgres([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--locale=C"]),
            check=True, stdout=subprocess.DEVNULL,
        )
        self.port = free_port()
        opts = (f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(
            _as_postgres([f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(self._dir, "log"),
                          "-o", opts, "-w", "-t", "60", "start"]),
            check=True, stdout=subprocess.DEVNULL,
        )

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def close(self) -> None:
        if self._dir is None:
            return
        subprocess.run(
            _as_postgres([f"{self._bindir}/pg_ctl", "-D", os.path.join(self._dir, "data"),
                          "-m", "fast", "-w", "stop"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None


_secret_key_file: Optional[str] = None


def secret_key_file() -> str:
    """The --secret_key_file of every server this test process starts (one
    key, mode 0600), so servers started one after another on one database
    open each other's sealed secrets. Removed at exit."""
    global _secret_key_file
    if _secret_key_file is None:
        directory = tempfile.mkdtemp(prefix="rio-key-")
        atexit.register(shutil.rmtree, directory, True)
        path = os.path.join(directory, "secret_key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"test {base64.b64encode(os.urandom(32)).decode()}\n")
        _secret_key_file = path
    return _secret_key_file


class ServerProcess:
    """rio-server on 127.0.0.1:0 (gRPC and HTTP), its stderr in a log file."""

    def __init__(self, binary: str, database_url: str, extra_args: Sequence[str] = ()) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="rio-server.", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [binary, "--database_url", database_url, "--listen", "127.0.0.1:0",
             "--http_listen", "127.0.0.1:0", "--admin_token", ADMIN_TOKEN,
             "--secret_key_file", secret_key_file(), "--shutdown_grace", "1s",
             "--egress_allow=127.0.0.0/8,::1/128", *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        match = None

        def ready() -> bool:
            nonlocal match
            match = READY.search(self.log())
            return match is not None or self.process.poll() is not None

        if not wait_for(ready, timeout=30) or match is None:
            self.stop()
            raise RuntimeError(f"rio-server did not become ready; log:\n{self.log()}")
        self.grpc_address, self.http_address = match.group(1), match.group(2)
        self.port = int(self.grpc_address.rsplit(":", 1)[1])

    def log(self) -> str:
        with open(self._log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


@dataclass
class Sender:
    project: str
    name: str
    token: str
    dsn: str  # rio://NAME:TOKEN@HOST:PORT/PROJECT as the server wrote it


class Admin:
    """The admin API, through the SDK's generated stubs."""

    def __init__(self, address: str, credentials: Optional[grpc.ChannelCredentials] = None) -> None:
        self.channel = (grpc.secure_channel(address, credentials) if credentials
                        else grpc.insecure_channel(address))
        self.projects = project_pb2_grpc.ProjectServiceStub(self.channel)
        self.handlers = handler_pb2_grpc.HandlerServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {ADMIN_TOKEN}"),)

    def create_project(self, slug: Optional[str] = None) -> str:
        slug = slug or f"p-{uuid.uuid4().hex[:12]}"
        self.projects.CreateProject(
            project_pb2.CreateProjectRequest(slug=slug), metadata=self.metadata, timeout=10
        )
        return slug

    def create_sender(self, project: str, name: str = "sender") -> Sender:
        reply = self.projects.CreateSender(
            project_pb2.CreateSenderRequest(project=project, name=name),
            metadata=self.metadata, timeout=10,
        )
        return Sender(project, name, reply.token, reply.dsn)

    def create_handler(self, project: str, event: str, url: str, json: bool = True,
                       method: str = "POST") -> handler_pb2.Handler:
        content_type = handler_pb2.Handler.JSON if json else handler_pb2.Handler.FORM
        return self.handlers.CreateHandler(
            handler_pb2.CreateHandlerRequest(
                project=project, event=event, url=url, content_type=content_type, timeout_ms=5000,
                method=handler_pb2.Handler.Method.Value(method),
            ),
            metadata=self.metadata, timeout=10,
        )

    def update_handler_url(self, handler_id: str, url: str) -> None:
        self.handlers.UpdateHandler(
            handler_pb2.UpdateHandlerRequest(id=handler_id, url=url),
            metadata=self.metadata, timeout=10,
        )

    def close(self) -> None:
        self.channel.close()


@dataclass
class Request:
    method: str
    path: str
    headers: Dict[str, str]  # lower-case names
    body: bytes


class Receiver:
    """A threaded HTTP server on 127.0.0.1:0 recording every request and
    answering ``status`` (200 by default)."""

    def __init__(self) -> None:
        self.requests: List[Request] = []
        self.status = 200
        self._cond = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command, self.path,
                    {k.lower(): v for k, v in self.headers.items()}, body,
                )
                with receiver._cond:
                    receiver.requests.append(request)
                    receiver._cond.notify_all()
                reply = b'{"status":"success","retval":0}'
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, count: int = 1, timeout: float = 15.0) -> List[Request]:
        """Waits until ``count`` requests arrived; returns all so far."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout=timeout):
                raise AssertionError(
                    f"the receiver got {len(self.requests)} requests within {timeout}s, "
                    f"expected {count}"
                )
            return list(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class ProxiedCall:
    idempotency_keys: List[str]
    reply: Optional[bytes]  # what the upstream server answered, if it did


class FlakyProxy:
    """A gRPC proxy for rio.v1.EmitService in front of the real server.

    Each call takes the next mode from ``modes`` ("pass" once they run out):
      "drop"   forward, let the server commit, then answer UNAVAILABLE (the
               reply was lost on the way back);
      "late"   forward, then hold the reply until the client's deadline passed;
      "refuse" answer UNAVAILABLE without forwarding;
      "pass"   forward and relay the reply.
    With ``tls=(key_pem, cert_pem)`` the proxy listens with TLS.
    """

    _METHODS = {
        "/rio.v1.EmitService/Emit": emit_pb2.EmitRequest,
        "/rio.v1.EmitService/EmitBatch": emit_pb2.EmitBatchRequest,
    }

    def __init__(self, upstream: str, modes: Optional[List[str]] = None,
                 tls: Optional[Tuple[bytes, bytes]] = None) -> None:
        self.modes = list(modes or [])
        self.calls: List[ProxiedCall] = []
        self._lock = threading.Lock()
        self._upstream = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        proxy = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):  # noqa: ANN001 - grpc's signature
                if details.method not in FlakyProxy._METHODS:
                    return None
                return grpc.unary_unary_rpc_method_handler(
                    lambda request, context: proxy._forward(details.method, request, context)
                )

        self._server.add_generic_rpc_handlers((Handler(),))
        if tls:
            creds = grpc.ssl_server_credentials([tls])
            self.port = self._server.add_secure_port("127.0.0.1:0", creds)
        else:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def _forward(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        parsed = self._METHODS[method].FromString(request)
        keys = ([e.idempotency_key for e in parsed.events] if hasattr(parsed, "events")
                else [parsed.idempotency_key])
        with self._lock:
            mode = self.modes.pop(0) if self.modes else "pass"
            call = ProxiedCall(keys, None)
            self.calls.append(call)
        if mode == "refuse":
            context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: refused")
        metadata = [(k, v) for k, v in context.invocation_metadata() if k == "authorization"]
        try:
            reply = self._upstream.unary_unary(method)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            context.abort(error.code(), error.details())
        call.reply = reply
        if mode == "drop":
            context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: reply lost")
        if mode == "late":
            remaining = context.time_remaining()
            time.sleep((remaining or 0) + 0.3)
        return reply

    def close(self) -> None:
        self._server.stop(grace=None)
        self._upstream.close()


def self_signed_certificate(directory: str) -> Tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for 127.0.0.1 and localhost, made with the
    openssl command."""
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    with open(key, "rb") as k, open(cert, "rb") as c:
        return k.read(), c.read()


TESTKIT_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
    "tests", "testkit")


def make_test_certificates(directory: str) -> Dict[str, str]:
    """Throwaway certificates made by the repository's
    tests/testkit/make_test_certs.sh (the C++ and Ruby tests use it too):
    file name -> path, e.g. "ca.pem", "server.pem", "client.key",
    "other-ca.pem"; the script's header lists them."""
    subprocess.run(["/bin/sh", os.path.join(TESTKIT_DIR, "make_test_certs.sh"), directory],
                   check=True, capture_output=True)
    return {name: os.path.join(directory, name) for name in os.listdir(directory)}


@contextlib.contextmanager
def wsgi_server(app):
    """Serves the WSGI ``app`` (e.g. a Flask app) with Werkzeug on
    127.0.0.1:0 in a thread; yields the port."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(timeout=10)


def parse_form(body: bytes) -> Dict[str, str]:
    from urllib.parse import parse_qs

    fields = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in fields.values()), fields
    return {k: v[0] for k, v in fields.items()}


SDK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES_DIR = os.path.join(SDK_DIR, "examples")


def _python_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment for example scripts: rio_client from this source tree
    (ahead of any installed copy)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (SDK_DIR, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_python(args: List[str], env: Optional[Dict[str, str]] = None) -> str:
    """Runs ``python3 ARGS`` in examples/ and returns its stdout; fails with
    its output when it exits non-zero."""
    done = subprocess.run(
        [sys.executable] + args, cwd=EXAMPLES_DIR, env=_python_env(env),
        capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"python3 {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def example_process(args: List[str], output, env: Optional[Dict[str, str]] = None):
    """A long-running example script in examples/, stdout and stderr
    appended to ``output``; terminated on exit."""
    with open(output, "ab") as out:
        process = subprocess.Popen(
            [sys.executable] + args, cwd=EXAMPLES_DIR, env=_python_env(env),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_flask_port(process: subprocess.Popen, output) -> int:
    """The port a Flask development server started with --port 0 reports."""
    found = None

    def started() -> bool:
        nonlocal found
        with open(output, encoding="utf-8", errors="replace") as f:
            found = re.search(r"Running on http://127\.0\.0\.1:(\d+)", f.read())
        return found is not None or process.poll() is not None

    wait_for(started, timeout=30)
    if found is None:
        with open(output, encoding="utf-8", errors="replace") as f:
            raise AssertionError(f"the Flask receiver did not start:\n{f.read()}")
    return int(found.group(1))
