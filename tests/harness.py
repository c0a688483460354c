"""Real parts for the tests that need them: the repository root, a fresh PostgreSQL database, a
free loopback port, a running `clipsweep serve` (uvicorn on loopback, its worker on a local Ray),
and the API in this process."""

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
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from service.api.app import create_app
from service.settings import Settings
from service.worker.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
# The system's Chromium, driven by Playwright (whose own browser download is not used).
CHROMIUM = Path(os.environ.get("CLIPSWEEP_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
    "--disable-default-apps", "--disable-extensions",
]

POSTGRES_ADMIN_URL = os.environ.get("CLIPSWEEP_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_postgres_database(template: str | None = None) -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped afterwards: empty, or a copy of `template`
    (a database nobody is connected to)."""
    name = f"clipsweep_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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


def in_process(settings: Settings) -> TestClient:
    """The API on `create_app`, in this process, its requests addressed to `localhost` (a host it
    answers by default). Use it as a context manager: that runs the app's lifespan."""
    return TestClient(create_app(settings), base_url="http://localhost")
