"""`clipsweep serve`: it refuses to listen beyond loopback with auth off, and on a busy port before
starting anything, and its access log keeps what matters."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli.run import QuietReads, is_loopback
from tests.harness import ROOT, free_port


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("[::1]", True), ("127.3.4.5", True), ("0.0.0.0", False),
                                                ("::", False), ("192.168.1.2", False), ("example.com", False)])
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_on_every_interface_without_auth_refuses_and_says_how_to_fix_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--host", "0.0.0.0",
                             "--port", str(free_port())], capture_output=True, text=True, timeout=60,
                            env={**env, "CLIPSWEEP_DATA_DIR": str(tmp_path)}, cwd=ROOT)
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0 with auth off" in result.stderr
    assert "CLIPSWEEP_AUTH=token" in result.stderr and "clipsweep token create" in result.stderr
    assert not (tmp_path / "clipsweep.sqlite3").exists()  # refused before anything started


def test_serve_on_a_busy_port_says_so_before_starting_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                                capture_output=True, text=True, timeout=60,
                                env={**env, "CLIPSWEEP_DATA_DIR": str(tmp_path)}, cwd=ROOT)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "clipsweep dashboard" not in result.stdout  # no URL printed that another process answers


def test_the_access_log_keeps_writes_and_errors_and_drops_successful_reads() -> None:
    def line(method: str, status: int) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                                 ("127.0.0.1:5000", method, "/api/v1/sweeps/1/summary", "1.1", status), None)

    quiet = QuietReads()
    assert not quiet.filter(line("GET", 200)) and not quiet.filter(line("HEAD", 304))
    assert quiet.filter(line("GET", 404)) and quiet.filter(line("POST", 201)) and quiet.filter(line("GET", 503))
