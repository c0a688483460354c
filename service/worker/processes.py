"""Stopping the child processes clipsweep starts (the embedded worker, sweep drivers)."""

from __future__ import annotations

import logging
import subprocess

log = logging.getLogger("clipsweep.processes")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """SIGTERM, which a clipsweep worker or driver answers by giving its sweep back; SIGKILL if it
    has not exited within `timeout` (its sweep is then claimed again when its heartbeat lapses)."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("process %s did not stop within %.0f s; killing it", process.pid, timeout)
        process.kill()
        process.wait()
