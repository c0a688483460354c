"""The worker: claims queued sweeps from the database and runs them.

The database is the source of truth. A sweep's runs are trained only while they have no outcome;
results are written as they arrive; a worker asked to stop gives its sweep back to the queue, and
one that dies leaves a heartbeat that lapses, after which another worker claims the sweep again.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.environment import environment
from service.lifecycle.lease import SweepLease
from service.lifecycle.queue import claim_next_sweep
from service.settings import Settings
from service.worker.execute import execute_sweep
from service.worker.processes import stop_process
from service.worker.runner import TrialRunner

log = logging.getLogger("clipsweep.worker")


def lease_for(factory: sessionmaker[Session], settings: Settings, sweep_id: int, worker_id: str) -> SweepLease:
    """The lease of a sweep `worker_id` claimed, with the settings' polling intervals."""
    return SweepLease(factory, sweep_id, worker_id, heartbeat_seconds=settings.heartbeat_seconds,
                      control_seconds=settings.control_poll_seconds)


def tune_runner(settings: Settings) -> TrialRunner:
    """The Ray Tune runner; Ray is imported only by a process that trains."""
    from service.worker.tune_runner import TuneRunner

    return TuneRunner(settings)


class Worker:
    """Claims sweeps and runs them: in this process one at a time, or, with
    `max_sweeps_per_worker` above one, each in a driver process of its own (Ray does not support
    several Tune runs in one driver), all on one Ray cluster."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, runner: TrialRunner | None = None) -> None:
        self.factory, self.settings = factory, settings
        self._runner = runner
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.stop = threading.Event()
        self.drivers: dict[int, subprocess.Popen[bytes]] = {}
        self._driver_env: dict[str, str] | None = None

    @property
    def runner(self) -> TrialRunner:
        if self._runner is None:
            self._runner = tune_runner(self.settings)
        return self._runner

    def claim(self) -> int | None:
        with session_scope(self.factory) as session:
            sweep_id = claim_next_sweep(session, self.id, heartbeat_timeout=self.settings.heartbeat_timeout_seconds,
                                        environment=environment)
        if sweep_id is not None:
            log.info("worker %s claimed sweep %s", self.id, sweep_id)
        return sweep_id

    def run_once(self) -> bool:
        """Claim and run one sweep in this process. False when the queue was empty."""
        sweep_id = self.claim()
        if sweep_id is None:
            return False
        execute_sweep(lease_for(self.factory, self.settings, sweep_id, self.id), self.runner, self.settings,
                      self.stop)
        return True

    def run_forever(self) -> None:
        log.info("worker %s polling for sweeps (at most %d at once)", self.id, self.settings.max_sweeps_per_worker)
        while not self.stop.is_set():
            try:
                if self.settings.max_sweeps_per_worker == 1:
                    if self.run_once():
                        continue
                elif self._start_drivers():
                    continue
            except Exception:  # the database is away: wait and poll again
                log.exception("worker %s could not poll the queue", self.id)
            self.stop.wait(self.settings.worker_poll_seconds)
        self._stop_drivers()
        log.info("worker %s stopped", self.id)

    def _give_back(self, sweep_id: int) -> None:
        lease_for(self.factory, self.settings, sweep_id, self.id).give_back_quietly(None, 0)

    def _reap_drivers(self) -> None:
        """Forget drivers that exited. One that crashed (non-zero exit: killed, out of memory, a
        bug) is logged and its sweep given back at once, rather than left 'running' until its
        heartbeat lapses; the runs its trials had started keep the attempt they spent."""
        for sweep_id, process in list(self.drivers.items()):
            code = process.poll()
            if code is None:
                continue
            del self.drivers[sweep_id]
            if code != 0:
                log.error("worker %s: the driver of sweep %s exited with code %s; giving the sweep back",
                          self.id, sweep_id, code)
                self._give_back(sweep_id)

    def _start_drivers(self) -> bool:
        """Reap finished drivers and start one per claimed sweep up to the cap. True if one started."""
        self._reap_drivers()
        if len(self.drivers) >= self.settings.max_sweeps_per_worker:
            return False
        env = self._env_for_drivers()  # before claiming: a claim must not wait on Ray starting
        sweep_id = self.claim()
        if sweep_id is None:
            return False
        if sweep_id in self.drivers:  # our own driver went silent and we re-claimed: it must go
            stop_process(self.drivers.pop(sweep_id))
        try:
            self.drivers[sweep_id] = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "drive", str(sweep_id), "--worker-id", self.id,
                 "--parent-pid", str(os.getpid())], env=env)
        except OSError:
            self._give_back(sweep_id)
            raise
        return True

    def _env_for_drivers(self) -> dict[str, str]:
        """Drivers join this worker's Ray: the configured cluster, or a local one started here."""
        if self._driver_env is None:
            env = dict(os.environ)
            if self.settings.ray_address is None:
                from service.worker.tune_runner import TuneRunner

                env["CLIPSWEEP_RAY_ADDRESS"] = TuneRunner(self.settings).local_address()
                env.setdefault("RAY_AUTH_MODE", "token")  # a local Ray started by ray.init uses tokens
            self._driver_env = env
        return self._driver_env

    def _stop_drivers(self, timeout: float = 60.0) -> None:
        """SIGTERM every driver: each gives its sweep back before it exits. One that does not
        within `timeout` is killed; its sweep is claimed again when its heartbeat lapses."""
        for process in self.drivers.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + timeout
        for process in self.drivers.values():
            stop_process(process, max(0.0, deadline - time.monotonic()))
        self.drivers.clear()

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            log.info("worker %s: signal %s, stopping after giving back its sweep", self.id, signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
