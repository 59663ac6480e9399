"""Fixtures: one PostgreSQL database and one real rio-server per test
session; a fresh project, sender and receiver per test.

The server binary is $RIO_SERVER_BINARY (ctest sets it). Tests that need no
server (DSN parsing, signatures, the Flask decorator) run without it.
"""

import os
import sys
from typing import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import support  # noqa: E402

EVENT = "comment-published"


@pytest.fixture(scope="session")
def pg() -> Iterator[support.PgCluster]:
    cluster = support.PgCluster()
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def database(pg: support.PgCluster) -> Iterator[str]:
    """A fresh database for this session's rio-server."""
    name = pg.create_database("rio_sdk_python")
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="session")
def sql(pg: support.PgCluster, database: str) -> Callable[[str], str]:
    """Runs SQL in the server's database; returns psql's unaligned output."""
    return lambda statement: pg.psql(statement, database)


@pytest.fixture(scope="session")
def server(
    request: pytest.FixtureRequest, pg: support.PgCluster, database: str
) -> Iterator[support.ServerProcess]:
    binary = os.environ.get("RIO_SERVER_BINARY")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(
            "set RIO_SERVER_BINARY to a built rio-server (ctest does; by hand: "
            "RIO_SERVER_BINARY=build/server/rio-server)",
            pytrace=False,
        )
    process = support.ServerProcess(binary, pg.url(database))
    yield process
    process.stop()
    if request.session.testsfailed:
        sys.stderr.write(f"\n--- rio-server log ---\n{process.log()}\n")
    process.remove_log()


@pytest.fixture(scope="session")
def admin(server: support.ServerProcess) -> Iterator[support.Admin]:
    a = support.Admin(server.grpc_address)
    yield a
    a.close()


@pytest.fixture
def sender(admin: support.Admin) -> support.Sender:
    """A sender of a fresh project."""
    return admin.create_sender(admin.create_project())


@pytest.fixture
def receiver() -> Iterator[support.Receiver]:
    r = support.Receiver()
    yield r
    r.close()


@pytest.fixture
def no_rio_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RIO_DSN", raising=False)
