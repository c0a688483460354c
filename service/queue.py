"""The sweep queue in the database: claim, heartbeat, release, finish.

A claim is a compare-and-set UPDATE guarded by the same condition that selected the sweep, so two
workers can never both win it; on PostgreSQL the selecting SELECT also skips rows another worker
has locked (FOR UPDATE SKIP LOCKED), so workers do not queue up behind each other.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from service.db.models import Run, RunOutcome, Sweep, SweepStatus
from service.results import now


def claim_next_sweep(session: Session, worker_id: str, *, heartbeat_timeout: float) -> int | None:
    """Claim the oldest queued sweep, or a running one whose worker stopped heartbeating.
    Returns its id, or None when there is nothing to do."""
    stale_before = now() - timedelta(seconds=heartbeat_timeout)
    claimable = or_(
        Sweep.status == SweepStatus.QUEUED.value,
        and_(Sweep.status == SweepStatus.RUNNING.value, Sweep.heartbeat_at < stale_before),
    )
    sweep_id = session.scalars(
        select(Sweep.id).where(claimable).order_by(Sweep.id).limit(1).with_for_update(skip_locked=True)
    ).first()
    if sweep_id is None:
        return None
    claimed_at = now()
    won = session.execute(
        update(Sweep).where(Sweep.id == sweep_id, claimable)
        .values(status=SweepStatus.RUNNING.value, worker_id=worker_id, heartbeat_at=claimed_at,
                started_at=func.coalesce(Sweep.started_at, claimed_at))
    ).rowcount
    return sweep_id if won == 1 else None


def heartbeat(session: Session, sweep_id: int, worker_id: str) -> bool:
    """Refresh the claim. False means another worker holds the sweep now."""
    return session.execute(
        update(Sweep).where(Sweep.id == sweep_id, Sweep.worker_id == worker_id,
                            Sweep.status == SweepStatus.RUNNING.value)
        .values(heartbeat_at=now())
    ).rowcount == 1


def release_sweep(session: Session, sweep_id: int, worker_id: str) -> None:
    """Give an unfinished sweep back to the queue (a worker shutting down cleanly)."""
    session.execute(
        update(Sweep).where(Sweep.id == sweep_id, Sweep.worker_id == worker_id)
        .values(status=SweepStatus.QUEUED.value, worker_id=None, heartbeat_at=None)
    )


def finish_sweep(session: Session, sweep_id: int, *, error: str | None = None) -> SweepStatus:
    """End a sweep whose runs all have outcomes: failed if any run failed (or `error` is given),
    succeeded otherwise. Diverged runs are results, never failures."""
    failed = session.execute(
        select(Run.error).where(Run.sweep_id == sweep_id, Run.outcome == RunOutcome.FAILED.value)
    ).scalars().all()
    if error is None and failed:
        first = next((e for e in failed if e), "no message")
        error = f"{len(failed)} run(s) failed; first error: {first}"
    status = SweepStatus.FAILED if error else SweepStatus.SUCCEEDED
    session.execute(
        update(Sweep).where(Sweep.id == sweep_id)
        .values(status=status.value, error=error, finished_at=now(), heartbeat_at=None)
    )
    return status


def fail_sweep(session: Session, sweep_id: int, error: str) -> None:
    """The sweep could not run at all: its unfinished runs and the sweep end `failed`."""
    session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None))
        .values(outcome=RunOutcome.FAILED.value, error=error, finished_at=now())
    )
    finish_sweep(session, sweep_id, error=error)
