"""The worker: claims queued sweeps from the database and runs them on Ray Tune.

The database is the source of truth. A sweep's runs are trained only while they have no outcome;
results are written as they arrive; a worker asked to stop gives its sweep back to the queue, and
one that dies leaves a heartbeat that lapses, after which another worker claims the sweep again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Callable, Sequence, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.planning import plan_trials
from service.processes import stop_process
from service.queue import (
    cancel_requested,
    claim_next_sweep,
    fail_sweep,
    finish_cancelled_by,
    finish_sweep,
    heartbeat,
    holds,
    release_sweep,
)
from service.results import (
    Chunk,
    ReportedRun,
    count_attempts,
    fail_exhausted_runs,
    fail_runs,
    pending_runs,
    store_results,
)
from service.settings import Settings
from service.spec import SweepSpec
from service.sweeps import get_sweep

log = logging.getLogger("clipsweep.worker")
T = TypeVar("T")


class DatabaseSink:
    """Buffers reported results and writes them in batches: when the oldest has waited
    `flush_seconds`, when a trial fails, and at the end. Also keeps the sweep's heartbeat and
    notices a cancel request."""

    def __init__(self, factory: sessionmaker[Session], sweep_id: int, worker_id: str,
                 settings: Settings) -> None:
        self.factory, self.sweep_id, self.worker_id = factory, sweep_id, worker_id
        self.flush_seconds = settings.results_flush_seconds
        self.heartbeat_seconds = settings.heartbeat_seconds
        self.control_seconds = settings.control_poll_seconds
        self.buffer: list[ReportedRun] = []
        self.failures: list[tuple[int, Sequence[int], str]] = []  # chunks whose code raised
        self.oldest: float | None = None
        self.last_beat = self.last_control = time.monotonic()
        self.cancelled = False
        self.lost_claim = False  # another worker holds the sweep now: stop, write nothing more
        self.lost: list[str] = []  # errors of trials lost to infrastructure
        self.to_count: list[Chunk] = []  # chunks whose trial started, attempt not yet written
        # Chunks started this round and not lost: a clean stop gives their attempt back (a lost
        # chunk's attempt stands, so restarts cannot reset the retry budget).
        self.started: set[Chunk] = set()

    def new_round(self) -> None:
        self.started = set()

    def add(self, result: ReportedRun) -> None:
        self.buffer.append(result)
        self.oldest = self.oldest or time.monotonic()
        self.tick()

    def fail_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        self.failures.append((cell_index, seeds, error))
        self._try_flush()

    def start_chunk(self, cell_index: int, seeds: Sequence[int]) -> None:
        """A trial started training these runs: one more attempt each (written with the next batch)."""
        chunk = (cell_index, tuple(seeds))
        self.to_count.append(chunk)
        self.started.add(chunk)
        self.oldest = self.oldest or time.monotonic()

    def lose_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        """Infrastructure went away under the chunk: its unfinished runs stay without an outcome,
        so the next round trains them again."""
        log.warning("sweep %s: a trial of cell %s was lost (%s); its unfinished runs will be retried",
                    self.sweep_id, cell_index, error)
        self.lost.append(error)
        chunk = (cell_index, tuple(seeds))
        if chunk in self.started:
            self.started.discard(chunk)
        else:
            # Lost before it started (its actor could not be created): that still spends an
            # attempt, or a cluster that never places it would be retried forever.
            self.to_count.append(chunk)
            self.oldest = self.oldest or time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if self.oldest is not None and now - self.oldest >= self.flush_seconds:
            self._try_flush()
        if now - self.last_beat >= self.heartbeat_seconds:
            try:
                with session_scope(self.factory) as session:
                    held = heartbeat(session, self.sweep_id, self.worker_id)
                self.last_beat = now
                if not held and not self.lost_claim:
                    self.lost_claim = True
                    log.warning("sweep %s is no longer held by %s (re-claimed after a lapse, or ended); "
                                "stopping its trials", self.sweep_id, self.worker_id)
            except Exception:  # a database blip: the next tick beats again
                log.exception("heartbeat of sweep %s failed; will retry", self.sweep_id)
        if not self.cancelled and now - self.last_control >= self.control_seconds:
            self.last_control = now
            try:
                with session_scope(self.factory) as session:
                    self.cancelled = cancel_requested(session, self.sweep_id)
            except Exception:
                log.exception("checking sweep %s for a cancel failed; will retry", self.sweep_id)
            if self.cancelled:
                log.info("sweep %s: cancel requested, stopping its trials", self.sweep_id)

    def _try_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # keep the buffer; the next tick or the final flush writes it
            log.exception("writing results of sweep %s failed; will retry", self.sweep_id)

    def flush(self) -> None:
        """Write what is buffered in one transaction. Results go first: the runs a failed chunk
        reported before it raised keep their outcomes, only the rest end `failed`."""
        if self.lost_claim:
            # Another worker trains these runs now: results are idempotent and still go in, but
            # attempts and failures are its to write.
            self.to_count, self.failures = [], []
        if not self.buffer and not self.failures and not self.to_count:
            return
        with session_scope(self.factory) as session:
            count_attempts(session, self.sweep_id, self.to_count)
            store_results(session, self.sweep_id, self.buffer)
            for cell_index, seeds, error in self.failures:
                fail_runs(session, self.sweep_id, cell_index, seeds, error)
        self.buffer, self.failures, self.to_count, self.oldest = [], [], [], None

    @property
    def should_stop_trials(self) -> bool:
        return self.cancelled or self.lost_claim


def _retrying(what: str, fn: Callable[[], T], stop: threading.Event, *, wait: float = 2.0) -> T:
    """Run a database step until it succeeds: the database being away for a while (a restart, a
    failover) must not lose the sweep. Gives up only when the worker is asked to stop."""
    while True:
        try:
            return fn()
        except OperationalError:
            if stop.is_set():
                raise
            log.exception("%s: the database is unavailable; retrying in %.0f s", what, wait)
            stop.wait(wait)


def _waiting_for(spec: SweepSpec, nodes: list[dict[str, float]]) -> str | None:
    """Why the cluster cannot place one trial of the sweep (on one node), or None when it can."""
    needs = {"CPU": spec.resources.cpus_per_trial, "GPU": spec.resources.gpus_per_trial}
    if any(all(node[kind] >= need for kind, need in needs.items()) for node in nodes):
        return None
    for kind, need in needs.items():
        total = sum(node[kind] for node in nodes)
        if need > total:
            return f"waiting for resources: needs {need:g} {kind} per trial, the cluster has {total:g}"
    return (f"waiting for resources: needs {needs['CPU']:g} CPU and {needs['GPU']:g} GPU per trial on one "
            f"node, and no node of the cluster has that much")


def execute_sweep(factory: sessionmaker[Session], settings: Settings, sweep_id: int,
                  worker_id: str, stop: threading.Event) -> None:
    """Train a claimed sweep's pending runs, then finish it; give it back if asked to stop or if
    the cluster cannot place it yet; end it `cancelled` if a cancel comes. Runs lost to
    infrastructure are trained again in another round, up to `max_infra_retries` times. Never
    raises: a problem of the sweep's own ends it `failed` with the message, and a database or
    Ray outage leaves it to be claimed again (nothing stored is touched)."""
    sink = DatabaseSink(factory, sweep_id, worker_id, settings)
    try:
        with session_scope(factory) as session:
            spec = SweepSpec.model_validate(get_sweep(session, sweep_id).spec)
            cancelled = cancel_requested(session, sweep_id)
        max_attempts = 1 + settings.max_infra_retries
        while not (cancelled or stop.is_set() or sink.lost_claim):
            with session_scope(factory) as session:
                exhausted = fail_exhausted_runs(
                    session, sweep_id, max_attempts,
                    f"lost to infrastructure {max_attempts} time(s) (a worker, Ray actor or node died); last: "
                    + (sink.lost[-1] if sink.lost else "the worker training it stopped heartbeating"))
                pending = pending_runs(session, sweep_id)
            if exhausted:
                log.warning("sweep %s: %d run(s) failed after %d attempts", sweep_id, exhausted, max_attempts)
            trials = plan_trials(spec, pending)
            if not trials:
                break
            from service import tune_runner  # imports Ray: only a worker that trains needs it

            tune_runner.ensure_ray(settings.ray_address, settings.keep_freed_memory)
            waiting = _waiting_for(spec, tune_runner.node_resources())
            if waiting:
                with session_scope(factory) as session:
                    release_sweep(session, sweep_id, worker_id, detail=waiting,
                                  wait_seconds=settings.resource_wait_seconds)
                log.info("sweep %s %s; back in the queue", sweep_id, waiting)
                return
            log.info("sweep %s: %d runs to train in %d trials", sweep_id, len(pending), len(trials))
            sink.new_round()
            lost_before = len(sink.lost)
            tune_runner.run_trials(
                trials, sink=sink, should_stop=lambda: stop.is_set() or sink.should_stop_trials,
                cpus_per_trial=spec.resources.cpus_per_trial,
                gpus_per_trial=spec.resources.gpus_per_trial,
                max_concurrent_trials=spec.resources.max_concurrent_trials,
                storage=settings.resolved_tune_storage, name=f"sweep-{sweep_id}",
                keep_freed_memory=settings.keep_freed_memory,
            )
            _retrying(f"sweep {sweep_id}: storing results", sink.flush, stop)
            cancelled = sink.cancelled
            if len(sink.lost) == lost_before:
                break  # nothing was lost: every trial reported, raised, or was stopped
        _retrying(f"sweep {sweep_id}: ending it", lambda: _end_sweep(factory, sweep_id, worker_id, sink), stop)
    except DBAPIError:
        log.exception("sweep %s: the database failed; leaving the sweep to be claimed again", sweep_id)
    except ConnectionError as exc:  # ray.init could not reach the cluster
        log.exception("sweep %s: Ray is unavailable", sweep_id)
        _give_back_quietly(factory, sweep_id, worker_id, f"waiting for Ray: {exc}", settings.resource_wait_seconds)
    except Exception as exc:
        from service import tune_runner  # Ray's own exceptions tell lost infrastructure apart

        if tune_runner.is_infrastructure_error(exc):  # Ray went away under Tune: not the sweep's fault
            log.exception("sweep %s: Ray failed under the trials; giving the sweep back", sweep_id)
            _give_back_quietly(factory, sweep_id, worker_id, f"waiting for Ray: {type(exc).__name__}",
                               settings.resource_wait_seconds)
            return
        log.exception("sweep %s could not run", sweep_id)
        message = f"{type(exc).__name__}: {exc}"
        with session_scope(factory) as session:
            if holds(session, sweep_id, worker_id):
                fail_sweep(session, sweep_id, message)


def _give_back_quietly(factory: sessionmaker[Session], sweep_id: int, worker_id: str, detail: str | None,
                       wait_seconds: float) -> None:
    try:
        with session_scope(factory) as session:
            release_sweep(session, sweep_id, worker_id, detail=detail, wait_seconds=wait_seconds)
    except DBAPIError:
        log.exception("sweep %s: could not give it back; it will be claimed again", sweep_id)


def _end_sweep(factory: sessionmaker[Session], sweep_id: int, worker_id: str, sink: DatabaseSink) -> None:
    with session_scope(factory) as session:
        if not holds(session, sweep_id, worker_id):
            log.warning("sweep %s is no longer held by %s; leaving it to its holder", sweep_id, worker_id)
        elif cancel_requested(session, sweep_id):
            finish_cancelled_by(session, sweep_id, worker_id)
            log.info("sweep %s cancelled", sweep_id)
        elif pending_runs(session, sweep_id):
            # Stopped on purpose before every run had an outcome: another worker (or this one,
            # after a restart) resumes exactly the runs still missing, their retry budget intact.
            count_attempts(session, sweep_id, list(sink.started), delta=-1)
            release_sweep(session, sweep_id, worker_id)
            log.info("sweep %s released unfinished", sweep_id)
        else:
            status = finish_sweep(session, sweep_id)
            log.info("sweep %s %s", sweep_id, status.value)


class Worker:
    """Claims sweeps and runs them: in this process one at a time, or, with
    `max_sweeps_per_worker` above one, each in a driver process of its own (Ray does not support
    several Tune runs in one driver), all on one Ray cluster."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        self.stop = threading.Event()
        self.drivers: dict[int, subprocess.Popen[bytes]] = {}
        self._driver_env: dict[str, str] | None = None

    def claim(self) -> int | None:
        with session_scope(self.factory) as session:
            sweep_id = claim_next_sweep(session, self.id,
                                        heartbeat_timeout=self.settings.heartbeat_timeout_seconds)
        if sweep_id is not None:
            log.info("worker %s claimed sweep %s", self.id, sweep_id)
        return sweep_id

    def run_once(self) -> bool:
        """Claim and run one sweep in this process. False when the queue was empty."""
        sweep_id = self.claim()
        if sweep_id is None:
            return False
        execute_sweep(self.factory, self.settings, sweep_id, self.id, self.stop)
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
                _give_back_quietly(self.factory, sweep_id, self.id, None, 0)

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
            _give_back_quietly(self.factory, sweep_id, self.id, None, 0)
            raise
        return True

    def _env_for_drivers(self) -> dict[str, str]:
        """Drivers join this worker's Ray: the configured cluster, or a local one started here."""
        if self._driver_env is None:
            env = dict(os.environ)
            if self.settings.ray_address is None:
                from service import tune_runner

                env["CLIPSWEEP_RAY_ADDRESS"] = tune_runner.start_local_ray(self.settings.keep_freed_memory)
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


class WorkerAlreadyRunning(RuntimeError):
    pass


def hold_sqlite_worker_lock(database_url: str) -> IO[str] | None:
    """SQLite serves one worker (its writes are serialized and it has no SKIP LOCKED): take an
    exclusive lock next to the database file for this process's lifetime, or say who holds it.
    Returns the open lock file (keep it referenced), or None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).with_name(Path(url.database).name + ".worker.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise WorkerAlreadyRunning(
            f"a worker ({holder}) already runs on the SQLite database {url.database}; SQLite supports "
            "one worker. Stop that one, or use PostgreSQL (CLIPSWEEP_DATABASE_URL) to run several.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def stop_when_orphaned(stop: threading.Event, parent: int | None = None,
                       poll_seconds: float = 1.0) -> threading.Thread:
    """Set `stop` once this process's parent is gone (its parent pid changes): the worker that
    `clipsweep serve` runs must not outlive it, even when serve is killed with SIGKILL, or it would
    keep training next to the worker of the next serve. Stopping gives the sweep back. `parent`
    is the pid the caller was started by, when known (it may already be gone at this point)."""
    parent = parent if parent is not None else os.getppid()

    def watch() -> None:
        while not stop.wait(poll_seconds):
            if os.getppid() != parent:
                log.warning("the parent process %s is gone; stopping", parent)
                stop.set()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
