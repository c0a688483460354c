"""Shared fixtures: real databases (SQLite and the PostgreSQL server on this machine), the HTTP
API in this process on either (`api`, for every request that needs no trainer), and a real
`clipsweep serve` (uvicorn on a free loopback port, its worker on a local Ray)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from service.api.app import create_app
from service.db import schema
from service.db.session import make_engine, make_session_factory
from service.settings import Settings
from service.worker.processes import stop_process

POSTGRES_ADMIN_URL = os.environ.get("CLIPSWEEP_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"clipsweep_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    with fresh_postgres_database() as url:
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
    with TestClient(create_app(Settings(database_url=db_url))) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `clipsweep serve` subprocess."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "serve.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
        full_env = {**inherited, "CLIPSWEEP_DATA_DIR": str(data_dir), **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clipsweep serve exited early:\n{self.log()}")
            try:
                if self.http.get("/api/v1/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"clipsweep serve did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_finished(self, sweep_id: int, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.http.get(f"/api/v1/sweeps/{sweep_id}")
            assert response.status_code == 200, f"{response.status_code} {response.text}\n{self.log()[-5000:]}"
            sweep = response.json()
            if sweep["finished"]:
                return sweep
            time.sleep(0.5)
        raise TimeoutError(f"sweep {sweep_id} did not finish in {timeout} s:\n{self.log()[-5000:]}")

    def stop(self) -> None:
        self.http.close()
        stop_process(self.process)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real service for the API tests: uvicorn on loopback, embedded SQLite, local Ray."""
    # The worker looks for new sweeps every 0.2 s instead of every second: tests submit many.
    srv = Server(tmp_path_factory.mktemp("serve"), env={"CLIPSWEEP_WORKER_POLL_SECONDS": "0.2"})
    yield srv
    srv.stop()
