"""`clipsweep serve`'s worker: a child process running `clipsweep worker`, restarted if it dies.

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

from service.processes import stop_process

log = logging.getLogger("clipsweep.serve")


class EmbeddedWorker:
    def __init__(self, restart_delay: float = 2.0) -> None:
        self.restart_delay = restart_delay
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="worker-watch", daemon=True)

    def _spawn(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "service.cli", "worker", "--exit-with-parent"],
                                        start_new_session=True)
        log.info("worker process %s started", self.process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            if self._stopping.is_set():
                return
            log.error("worker process exited with code %s; restarting in %.0f s", code, self.restart_delay)
            if self._stopping.wait(self.restart_delay):
                return
            self._spawn()

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        if self.process is not None:
            stop_process(self.process, timeout)
