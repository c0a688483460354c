"""Sweep state changes: claim, heartbeat, release, cancel, finish, fail.

Every change is one UPDATE guarded by the state it expects, so two processes can never both win
one: a claim is a compare-and-set on the condition that selected the sweep (on PostgreSQL the
SELECT also skips rows another worker has locked, FOR UPDATE SKIP LOCKED, so workers do not queue
up behind each other); a worker's writes are guarded by its still holding the sweep; a cancel
never overwrites a sweep that finished meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from service.clock import now
from service.db.models import Run, Sweep
from service.errors import SweepAlreadyFinished
from service.states import RunOutcome, SweepStatus


def _abandoned(heartbeat_timeout: float) -> ColumnElement[bool]:
    """A running sweep whose worker stopped heartbeating."""
    return and_(Sweep.status == SweepStatus.RUNNING,
                or_(Sweep.heartbeat_at.is_(None), Sweep.heartbeat_at < now() - timedelta(seconds=heartbeat_timeout)))


def held_by(worker_id: str) -> ColumnElement[bool]:
    """A running sweep that `worker_id` claimed and nobody took over."""
    return and_(Sweep.worker_id == worker_id, Sweep.status == SweepStatus.RUNNING)


def claim_next_sweep(session: Session, worker_id: str, *, heartbeat_timeout: float,
                     environment: Callable[[str], dict[str, str | None]] | None = None) -> int | None:
    """Claim the oldest queued sweep, or a running one whose worker stopped heartbeating.
    Returns its id, or None when there is nothing to do. `environment(task)`, when given, is
    what the sweep is recorded as running against (service/environment.py)."""
    claimable = or_(
        and_(Sweep.status == SweepStatus.QUEUED, or_(Sweep.not_before.is_(None), Sweep.not_before <= now())),
        _abandoned(heartbeat_timeout),
    )
    found = session.execute(
        select(Sweep.id, Sweep.task).where(claimable).order_by(Sweep.id).limit(1).with_for_update(skip_locked=True)
    ).first()
    if found is None:
        return None
    sweep_id, task = found
    claimed_at = now()
    recorded = {"environment": environment(task)} if environment else {}
    won = session.execute(
        update(Sweep).where(Sweep.id == sweep_id, claimable)
        .values(status=SweepStatus.RUNNING, worker_id=worker_id, heartbeat_at=claimed_at,
                started_at=func.coalesce(Sweep.started_at, claimed_at), claims=Sweep.claims + 1,
                status_detail=None, not_before=None, live_steps=None, **recorded)
    ).rowcount
    return sweep_id if won == 1 else None


def heartbeat(session: Session, sweep_id: int, worker_id: str) -> bool:
    """Refresh the claim. False means another worker holds the sweep now."""
    return session.execute(
        update(Sweep).where(Sweep.id == sweep_id, held_by(worker_id)).values(heartbeat_at=now())
    ).rowcount == 1


def holds(session: Session, sweep_id: int, worker_id: str) -> bool:
    """Whether `worker_id` still holds the sweep (no one re-claimed it, no cancel ended it). On
    PostgreSQL the row stays locked until the transaction ends, so what the caller then writes
    cannot race a re-claim."""
    return session.scalar(
        select(Sweep.id).where(Sweep.id == sweep_id, held_by(worker_id)).with_for_update()
    ) is not None


def release_sweep(session: Session, sweep_id: int, worker_id: str, *, detail: str | None = None,
                  wait_seconds: float | None = None) -> None:
    """Give an unfinished sweep back to the queue: a worker shutting down cleanly, or (with
    `detail` and `wait_seconds`) a sweep the cluster cannot place yet, which says why it waits and
    is not claimed again before `wait_seconds` have passed."""
    not_before = now() + timedelta(seconds=wait_seconds) if wait_seconds else None
    values: dict[str, Any] = {"status": SweepStatus.QUEUED, "worker_id": None, "heartbeat_at": None,
                              "status_detail": detail, "not_before": not_before, "live_steps": None}
    if wait_seconds:
        values["claims"] = Sweep.claims - 1  # a look that found no room is not a claim that ran
    session.execute(update(Sweep).where(Sweep.id == sweep_id, held_by(worker_id)).values(**values))


def record_live_steps(session: Session, sweep_id: int, steps: int) -> None:
    """The steps the running sweep's unfinished runs have made, as its worker knows them now."""
    session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SweepStatus.RUNNING)
                    .values(live_steps=steps))


def request_cancel(session: Session, sweep: Sweep, *, heartbeat_timeout: float) -> SweepStatus:
    """Cancel a sweep. A queued sweep, or a running one whose worker is gone, ends `cancelled` at
    once; a running one is flagged, and its worker stops the trials and ends it. Returns the
    status the sweep has now (RUNNING while its worker winds down)."""
    ended_now = or_(Sweep.status == SweepStatus.QUEUED, _abandoned(heartbeat_timeout))
    if finish_cancelled(session, sweep.id, only_if=ended_now):
        return SweepStatus.CANCELLED
    flagged = session.execute(
        update(Sweep).where(Sweep.id == sweep.id, Sweep.status == SweepStatus.RUNNING)
        .values(cancel_requested_at=func.coalesce(Sweep.cancel_requested_at, now()))
    ).rowcount
    if flagged:
        return SweepStatus.RUNNING
    session.refresh(sweep)
    raise SweepAlreadyFinished(sweep.id, sweep.status)


def cancel_requested(session: Session, sweep_id: int) -> bool:
    return session.scalar(select(Sweep.cancel_requested_at).where(Sweep.id == sweep_id)) is not None


def finish_cancelled(session: Session, sweep_id: int, *, only_if: ColumnElement[bool]) -> bool:
    """End a sweep `cancelled` if it still matches `only_if`: runs without an outcome end
    `cancelled`; finished runs stay. False (and nothing changed) when it no longer matched."""
    finished_at = now()
    ended = session.execute(
        update(Sweep).where(Sweep.id == sweep_id, only_if)
        .values(status=SweepStatus.CANCELLED, finished_at=finished_at, heartbeat_at=None, live_steps=None,
                status_detail=None, cancel_requested_at=func.coalesce(Sweep.cancel_requested_at, finished_at))
    ).rowcount
    if ended:
        session.execute(
            update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None))
            .values(outcome=RunOutcome.CANCELLED, finished_at=finished_at)
        )
    return bool(ended)


def finish_sweep(session: Session, sweep_id: int, *, error: str | None = None) -> SweepStatus:
    """End a sweep whose runs all have outcomes: failed if any run failed (or `error` is given),
    succeeded otherwise. Diverged runs are results, never failures."""
    failed = session.execute(
        select(Run.error).where(Run.sweep_id == sweep_id, Run.outcome == RunOutcome.FAILED)
    ).scalars().all()
    if error is None and failed:
        first = next((e for e in failed if e), "no message")
        error = f"{len(failed)} run(s) failed; first error: {first}"
    status = SweepStatus.FAILED if error else SweepStatus.SUCCEEDED
    session.execute(
        update(Sweep).where(Sweep.id == sweep_id)
        .values(status=status, error=error, finished_at=now(), heartbeat_at=None, live_steps=None)
    )
    return status


def fail_sweep(session: Session, sweep_id: int, error: str) -> None:
    """The sweep could not run at all: its unfinished runs and the sweep end `failed`."""
    session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None))
        .values(outcome=RunOutcome.FAILED, error=error, finished_at=now())
    )
    finish_sweep(session, sweep_id, error=error)
