"""Real processes for the tests that need them: the repository root, a free loopback port, and a
running `clipsweep serve` (uvicorn on loopback, its worker on a local Ray)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from service.worker.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent


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
