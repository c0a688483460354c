"""The worker: claims queued sweeps from the database and runs them on Ray Tune.

The database is the source of truth. A sweep's runs are trained only while they have no outcome;
results are written as they arrive; a worker asked to stop gives its sweep back to the queue, and
one that dies leaves a heartbeat that lapses, after which another worker claims the sweep again.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Sequence

from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.planning import plan_trials
from service.queue import claim_next_sweep, fail_sweep, finish_sweep, heartbeat, release_sweep
from service.results import ReportedRun, fail_runs, pending_runs, store_results
from service.settings import Settings
from service.spec import SweepSpec
from service.sweeps import get_sweep

log = logging.getLogger("clipsweep.worker")


class DatabaseSink:
    """Buffers reported results and writes them in batches: when the oldest has waited
    `flush_seconds`, when a trial fails, and at the end. Also keeps the sweep's heartbeat."""

    def __init__(self, factory: sessionmaker[Session], sweep_id: int, worker_id: str,
                 settings: Settings) -> None:
        self.factory, self.sweep_id, self.worker_id = factory, sweep_id, worker_id
        self.flush_seconds = settings.results_flush_seconds
        self.heartbeat_seconds = settings.heartbeat_seconds
        self.buffer: list[ReportedRun] = []
        self.oldest: float | None = None
        self.last_beat = time.monotonic()
        self.stored = 0

    def add(self, result: ReportedRun) -> None:
        self.buffer.append(result)
        self.oldest = self.oldest or time.monotonic()
        self.tick()

    def fail_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        self.flush()  # what the chunk reported before it raised stays a result
        with session_scope(self.factory) as session:
            fail_runs(session, self.sweep_id, cell_index, seeds, error)

    def tick(self) -> None:
        now = time.monotonic()
        if self.oldest is not None and now - self.oldest >= self.flush_seconds:
            self._try_flush()
        if now - self.last_beat >= self.heartbeat_seconds:
            try:
                with session_scope(self.factory) as session:
                    heartbeat(session, self.sweep_id, self.worker_id)
                self.last_beat = now
            except Exception:  # a database blip: the next tick beats again
                log.exception("heartbeat of sweep %s failed; will retry", self.sweep_id)

    def _try_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # keep the buffer; the next tick or the final flush writes it
            log.exception("writing results of sweep %s failed; will retry", self.sweep_id)

    def flush(self) -> None:
        if not self.buffer:
            return
        with session_scope(self.factory) as session:
            self.stored += store_results(session, self.sweep_id, self.buffer)
        self.buffer, self.oldest = [], None


def execute_sweep(factory: sessionmaker[Session], settings: Settings, sweep_id: int,
                  worker_id: str, stop: threading.Event) -> None:
    """Train a claimed sweep's pending runs, then finish it, or give it back if asked to stop.
    Never raises for a problem of the sweep's own: the sweep ends `failed` with the message."""
    try:
        with session_scope(factory) as session:
            spec = SweepSpec.model_validate(get_sweep(session, sweep_id).spec)
            pending = pending_runs(session, sweep_id)
        trials = plan_trials(spec, pending)
        log.info("sweep %s: %d runs to train in %d trials", sweep_id, len(pending), len(trials))
        if trials:
            from service import tune_runner  # imports Ray: only a worker that trains needs it

            tune_runner.ensure_ray(settings.ray_address)
            sink = DatabaseSink(factory, sweep_id, worker_id, settings)
            tune_runner.run_trials(
                trials, sink=sink, stop=stop,
                cpus_per_trial=spec.resources.cpus_per_trial,
                gpus_per_trial=spec.resources.gpus_per_trial,
                max_concurrent_trials=spec.resources.max_concurrent_trials,
                storage_path=settings.data_dir / "ray_results", name=f"sweep-{sweep_id}",
            )
            sink.flush()
        with session_scope(factory) as session:
            if pending_runs(session, sweep_id):
                # Stopped before every run had an outcome: another worker (or this one, after a
                # restart) resumes exactly the runs still missing.
                release_sweep(session, sweep_id, worker_id)
                log.info("sweep %s released unfinished", sweep_id)
            else:
                status = finish_sweep(session, sweep_id)
                log.info("sweep %s %s", sweep_id, status.value)
    except Exception as exc:
        log.exception("sweep %s could not run", sweep_id)
        message = f"{type(exc).__name__}: {exc}"
        with session_scope(factory) as session:
            fail_sweep(session, sweep_id, message)


class Worker:
    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.stop = threading.Event()

    def run_once(self) -> bool:
        """Claim and run one sweep. False when the queue was empty."""
        with session_scope(self.factory) as session:
            sweep_id = claim_next_sweep(session, self.id,
                                        heartbeat_timeout=self.settings.heartbeat_timeout_seconds)
        if sweep_id is None:
            return False
        log.info("worker %s claimed sweep %s", self.id, sweep_id)
        execute_sweep(self.factory, self.settings, sweep_id, self.id, self.stop)
        return True

    def run_forever(self) -> None:
        log.info("worker %s polling for sweeps", self.id)
        while not self.stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception:  # the database is away: wait and poll again
                log.exception("worker %s could not poll the queue", self.id)
            self.stop.wait(self.settings.worker_poll_seconds)
        log.info("worker %s stopped", self.id)

    def install_signal_handlers(self) -> None:
        def _stop(signum: int, _frame: object) -> None:
            log.info("worker %s: signal %s, stopping after giving back its sweep", self.id, signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
