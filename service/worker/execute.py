"""Running one claimed sweep to its end: trials planned from what is stored until every run has
an outcome.

The worker plans one trial per (cell, chunk of seeds) over the runs still without an outcome and
not in flight; the TrialRunner asks it again as soon as a trial is done (all of a sweep's trials
are one run of the runner). Once every run it can plan is in flight or done, an adaptive sweep may
add seeds where a learning rate's runs have all come back and its questions are still open
(service/lifecycle/adaptive.py), and a search its next probes (service/lifecycle/search.py): each
learning rate moves at its own pace, never waiting for the trials of another. Runs lost to
infrastructure are trained again, up to `max_infra_retries` times; a trial whose code raises ends
its runs `failed`; divergence is an outcome like any other and is never retried.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Collection, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from service.errors import ClusterUnavailable
from service.lifecycle.adaptive import add_seeds
from service.lifecycle.lease import SweepLease
from service.lifecycle.runs import Chunk, fail_exhausted_runs, pending_runs
from service.lifecycle.search import add_probes, waiting_probes
from service.queries.sweeps import get_sweep, sweep_cells
from service.settings import Settings
from service.spec import ResourcesSpec
from service.worker.buffer import ResultBuffer
from service.worker.planning import TrialPlan, plan_trials
from service.worker.runner import TrialRunner, waiting_for

log = logging.getLogger("clipsweep.worker")
T = TypeVar("T")


def _retrying(what: str, step: Callable[[], T], stop: threading.Event, *, wait: float = 2.0) -> T:
    """Run a database step until it succeeds: the database being away for a while (a restart, a
    failover) must not lose the sweep. Gives up only when the worker is asked to stop."""
    while True:
        try:
            return step()
        except OperationalError:
            if stop.is_set():
                raise
            log.exception("%s: the database is unavailable; retrying in %.0f s", what, wait)
            stop.wait(wait)


def _more_runs(lease: SweepLease) -> int:
    """Runs added: seeds where questions are open, probes where a search moves."""
    with lease.session() as session:
        held = waiting_probes(session, lease.sweep_id)
        return add_seeds(session, lease.sweep_id, held) + add_probes(session, lease.sweep_id)


class _Planner:
    """The worker's side of the runner: called as trials are done (and at the start), it
    stores what has been reported and plans trials from what is stored now, leaving out the runs
    in flight (the runs without an outcome, lost ones included, else the runs an adaptive sweep
    adds); none when the sweep is done, cancelled, stopped, taken over, or waiting for resources
    (`waiting`)."""

    def __init__(self, lease: SweepLease, runner: TrialRunner, buffer: ResultBuffer, settings: Settings,
                 resources: ResourcesSpec, stop: threading.Event) -> None:
        self.lease, self.runner, self.buffer, self.settings = lease, runner, buffer, settings
        self.resources, self.stop = resources, stop
        self.waiting: str | None = None

    def __call__(self, in_flight: Collection[Chunk]) -> list[TrialPlan]:
        sweep_id, stop = self.lease.sweep_id, self.stop
        _retrying(f"sweep {sweep_id}: storing results", self.buffer.flush, stop)
        max_attempts = 1 + self.settings.max_infra_retries
        while not (self.lease.cancelled or stop.is_set() or self.lease.lost):
            with self.lease.session() as session:
                exhausted = fail_exhausted_runs(
                    session, sweep_id, max_attempts,
                    f"lost to infrastructure {max_attempts} time(s) (a worker, Ray actor or node died); last: "
                    + (self.buffer.lost[-1] if self.buffer.lost else "the worker training it stopped heartbeating"),
                    in_flight)
                pending = pending_runs(session, sweep_id, in_flight)
                # Read every time: a search adds cells as it goes.
                configs = {cell.cell_index: cell.config for cell in sweep_cells(session, sweep_id)}
            if exhausted:
                log.warning("sweep %s: %d run(s) failed after %d attempts", sweep_id, exhausted, max_attempts)
            trials = plan_trials(configs, pending, self.resources.max_seeds_per_trial)
            if trials:
                # With trials in flight the cluster can evidently place one.
                self.waiting = None if in_flight else waiting_for(self.resources, self.runner.node_resources())
                if self.waiting:
                    return []
                log.info("sweep %s: %d runs to train in %d trials", sweep_id, len(pending), len(trials))
                return trials
            # Every run is in flight or has its outcome: an adaptive sweep may add runs where a
            # learning rate's have all come back (a resumed sweep's, too).
            if not _retrying(f"sweep {sweep_id}: planning more runs", lambda: _more_runs(self.lease), stop):
                break
        return []


def execute_sweep(lease: SweepLease, runner: TrialRunner, settings: Settings, stop: threading.Event) -> None:
    """Train a claimed sweep's pending runs, then end it; give it back if asked to stop or if
    the cluster cannot place it yet; end it `cancelled` if a cancel comes. Never raises: a problem
    of the sweep's own ends it `failed` with the message, and a database or Ray outage leaves it
    to be claimed again (nothing stored is touched)."""
    sweep_id = lease.sweep_id
    buffer = ResultBuffer(lease, settings.results_flush_seconds)
    try:
        with lease.session() as session:
            resources = ResourcesSpec.model_validate(get_sweep(session, sweep_id).spec["resources"])
        lease.cancelled = lease.cancel_requested()
        planner = _Planner(lease, runner, buffer, settings, resources, stop)
        runner.run_trials(planner, sink=buffer, should_stop=lambda: stop.is_set() or lease.poll(),
                          resources=resources, name=f"sweep-{sweep_id}")
        _retrying(f"sweep {sweep_id}: storing results", buffer.flush, stop)
        if planner.waiting:
            lease.release(detail=planner.waiting, wait_seconds=settings.resource_wait_seconds)
            log.info("sweep %s %s; back in the queue", sweep_id, planner.waiting)
            return
        _retrying(f"sweep {sweep_id}: ending it", lambda: lease.end(list(buffer.started)), stop)
    except DBAPIError:
        log.exception("sweep %s: the database failed; leaving the sweep to be claimed again", sweep_id)
    except ClusterUnavailable as exc:  # not the sweep's fault: it waits for the cluster
        log.exception("sweep %s: Ray is unavailable; giving the sweep back", sweep_id)
        lease.give_back_quietly(f"waiting for Ray: {exc}", settings.resource_wait_seconds)
    except Exception as exc:
        log.exception("sweep %s could not run", sweep_id)
        lease.fail(f"{type(exc).__name__}: {exc}")
