"""Shared fixtures: real databases (SQLite and the PostgreSQL server on this machine), the HTTP
API in this process on either (`api`, for every request that needs no trainer), and a real
`clipsweep serve` (uvicorn on a free loopback port, its worker on a local Ray)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db import schema
from service.db.session import make_engine, make_session_factory
from service.settings import Settings
from tests.harness import Server, fresh_postgres_database, in_process


@pytest.fixture(scope="session")
def at_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A database of each kind upgraded to the code's schema once per session: a SQLite file and
    a PostgreSQL database's name, which tests that want a database at the schema get a copy of
    (copying one is a few milliseconds; running the migrations took ~0.1 s a test)."""
    sqlite = tmp_path_factory.mktemp("at-head") / "at-head.sqlite3"
    schema.upgrade(f"sqlite:///{sqlite}")
    with fresh_postgres_database() as url:
        schema.upgrade(url)
        yield {"sqlite": str(sqlite), "postgresql": url.rsplit("/", 1)[1]}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind, a SQLite file or a fresh PostgreSQL database: empty, or, for a
    test that uses `engine` (which upgrades it), a copy of one already at the code's schema."""
    template = request.getfixturevalue("at_head")[request.param] if "engine" in request.fixturenames else None
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite3"
        if template:
            shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    with fresh_postgres_database(template) as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, for what SQLite cannot do (several workers)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A database of each kind upgraded to the code's schema."""
    schema.upgrade(db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def api(db_url: str, engine: Engine) -> Iterator[TestClient]:
    """The HTTP API on `create_app`, in this process, on a database of each kind (the same one
    `session_factory` opens). No worker: tests store results themselves."""
    with in_process(Settings(database_url=db_url)) as client:
        yield client


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real service for the API tests: uvicorn on loopback, embedded SQLite, local Ray."""
    # The worker looks for new sweeps every 0.2 s instead of every second: tests submit many.
    srv = Server(tmp_path_factory.mktemp("serve"), env={"CLIPSWEEP_WORKER_POLL_SECONDS": "0.2"})
    yield srv
    srv.stop()


# The modules whose tests take longest, most of it waiting on other processes (a minute to turn, a
# heartbeat to lapse, a killed service to come back).
WAITING = ("test_orchestration.py", "test_scheduler_process.py")


@pytest.hookimpl(trylast=True)  # after `-k` and `-m` have deselected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two test processes (scripts/test.sh, xdist's worksteal) start on the two halves of this
    order, and one that runs out takes the back half of the other's queue. So each half starts
    with real-process tests, the first half with the long waits and the second with the rest,
    and the in-process tests come after them in both: the waits overlap the other process's
    computing, and the last tests to be shared out, where the two processes meet, are short. (In
    one order with every slow test first, the processes met among the CLI's training tests, and
    one of them ran alone for minutes.) Within a module the order is kept."""
    slow = [item for item in items if item.get_closest_marker("slow")]
    waiting = [item for item in slow if item.path.name in WAITING]
    other_slow = [item for item in slow if item.path.name not in WAITING]
    fast = [item for item in items if not item.get_closest_marker("slow")]
    cut = max(0, len(items) // 2 - len(waiting))
    items[:] = waiting + fast[:cut] + other_slow + fast[cut:]
