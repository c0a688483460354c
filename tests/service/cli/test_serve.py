"""`clipsweep serve` refuses to listen beyond loopback with auth off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.cli.run import is_loopback
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
