"""A worker's lease on one claimed sweep: everything the worker may do to it, in one object.

The lease carries what every step needs (the session factory, the sweep id, the worker id) and
the two facts the worker learns while it trains: a cancel was requested, or the claim was lost
(another worker took the sweep over after a heartbeat lapse). Each write checks, with the sweep's
row locked on PostgreSQL, that this worker still holds the sweep.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.lifecycle import queue
from service.lifecycle.runs import Chunk, count_attempts, pending_runs

log = logging.getLogger("clipsweep.worker")


class SweepLease:
    """Worker `worker_id`'s hold on sweep `sweep_id`, from its claim until it ends or gives the
    sweep back. `poll` keeps the heartbeat and looks for a cancel, each at most as often as asked."""

    def __init__(self, factory: sessionmaker[Session], sweep_id: int, worker_id: str, *,
                 heartbeat_seconds: float, control_seconds: float) -> None:
        self.factory, self.sweep_id, self.worker_id = factory, sweep_id, worker_id
        self.heartbeat_seconds, self.control_seconds = heartbeat_seconds, control_seconds
        self.last_beat = self.last_control = time.monotonic()
        self.cancelled = False
        self.lost = False  # another worker holds the sweep now: stop, and write nothing of ours

    def session(self) -> AbstractContextManager[Session]:
        """A session that commits when the block ends (one use case)."""
        return session_scope(self.factory)

    def poll(self) -> bool:
        """Heartbeat and check for a cancel when each is due; True once the trials should stop
        (cancelled, or the claim was lost). A database blip is logged and tried again next time."""
        moment = time.monotonic()
        if moment - self.last_beat >= self.heartbeat_seconds:
            try:
                with self.session() as session:
                    held = queue.heartbeat(session, self.sweep_id, self.worker_id)
                self.last_beat = moment
                if not held and not self.lost:
                    self.lost = True
                    log.warning("sweep %s is no longer held by %s (re-claimed after a lapse, or ended); "
                                "stopping its trials", self.sweep_id, self.worker_id)
            except Exception:  # the next poll beats again
                log.exception("heartbeat of sweep %s failed; will retry", self.sweep_id)
        if not self.cancelled and moment - self.last_control >= self.control_seconds:
            self.last_control = moment
            try:
                self.cancelled = self.cancel_requested()
            except Exception:
                log.exception("checking sweep %s for a cancel failed; will retry", self.sweep_id)
            if self.cancelled:
                log.info("sweep %s: cancel requested, stopping its trials", self.sweep_id)
        return self.cancelled or self.lost

    def cancel_requested(self) -> bool:
        with self.session() as session:
            return queue.cancel_requested(session, self.sweep_id)

    def release(self, *, detail: str | None = None, wait_seconds: float | None = None) -> None:
        """Give the sweep back to the queue (see queue.release_sweep)."""
        with self.session() as session:
            queue.release_sweep(session, self.sweep_id, self.worker_id, detail=detail, wait_seconds=wait_seconds)

    def give_back_quietly(self, detail: str | None, wait_seconds: float) -> None:
        """Release, and if the database is away too, leave the sweep to be claimed again once its
        heartbeat lapses."""
        try:
            self.release(detail=detail, wait_seconds=wait_seconds)
        except DBAPIError:
            log.exception("sweep %s: could not give it back; it will be claimed again", self.sweep_id)

    def end(self, started: Sequence[Chunk]) -> None:
        """After the last trial: end the sweep cancelled or finished, or, if it was stopped on
        purpose before every run had an outcome, give it back with the `started` chunks' attempts
        returned, so another worker (or this one, restarted) resumes exactly the runs still missing,
        their retry budget intact. Writes nothing once the sweep is someone else's."""
        with self.session() as session:
            if not queue.holds(session, self.sweep_id, self.worker_id):
                log.warning("sweep %s is no longer held by %s; leaving it to its holder", self.sweep_id, self.worker_id)
            elif queue.cancel_requested(session, self.sweep_id):
                queue.finish_cancelled(session, self.sweep_id, only_if=queue.held_by(self.worker_id))
                log.info("sweep %s cancelled", self.sweep_id)
            elif pending_runs(session, self.sweep_id):
                count_attempts(session, self.sweep_id, started, delta=-1)
                queue.release_sweep(session, self.sweep_id, self.worker_id)
                log.info("sweep %s released unfinished", self.sweep_id)
            else:
                status = queue.finish_sweep(session, self.sweep_id)
                log.info("sweep %s %s", self.sweep_id, status)

    def fail(self, message: str) -> None:
        """The sweep cannot run at all (its own problem, not the infrastructure's): it and its
        unfinished runs end `failed` with the message, if this worker still holds it."""
        with self.session() as session:
            if queue.holds(session, self.sweep_id, self.worker_id):
                queue.fail_sweep(session, self.sweep_id, message)
