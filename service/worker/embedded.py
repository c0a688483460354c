"""`clipsweep serve`'s worker and scheduler: child processes running `clipsweep worker` and
`clipsweep scheduler`, each restarted if it dies.

A separate process keeps training (Ray, torch threads) out of the API's event loop, and a crash of
one out of the other. It runs in its own session so a Ctrl-C in the terminal reaches only `serve`,
which then stops the worker with SIGTERM: the worker gives its sweep back before it exits. If
`serve` dies without that chance (SIGKILL), the worker notices it was orphaned and does the same.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

from service.worker.processes import stop_process

log = logging.getLogger("clipsweep.serve")


class EmbeddedWorker:
    """Runs `command` (by default `clipsweep ROLE`) and restarts it when it exits, waiting
    `restart_delay` seconds, twice as long after each exit that follows quickly on a restart, up
    to `max_delay`. A worker that cannot start (another one holds the SQLite database, the
    database is unreachable) is retried at a slowing pace instead of every few seconds for as
    long as `serve` runs; one that ran longer than `max_delay` before it died is restarted after
    `restart_delay` again."""

    def __init__(self, restart_delay: float = 2.0, max_delay: float = 60.0,
                 command: list[str] | None = None, role: str = "worker") -> None:
        self.restart_delay, self.max_delay, self.role = restart_delay, max_delay, role
        self.command = command or [sys.executable, "-m", "service.cli", role, "--exit-with-parent"]
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"{role}-watch", daemon=True)

    def _spawn(self) -> None:
        self.process = subprocess.Popen(self.command, start_new_session=True)
        log.info("%s process %s started", self.role, self.process.pid)

    def _watch(self) -> None:
        delay = self.restart_delay
        while not self._stopping.is_set():
            assert self.process is not None
            started = time.monotonic()
            code = self.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started > self.max_delay:  # it had been running: a new failure
                delay = self.restart_delay
            log.error("%s process exited with code %s; restarting in %.3g s", self.role, code, delay)
            if self._stopping.wait(delay):
                return
            self._spawn()
            delay = min(2 * delay, self.max_delay)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        if self.process is not None:
            stop_process(self.process, timeout)
