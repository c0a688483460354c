"""What an operator watches, read in a few aggregate queries: sweeps by status, runs by outcome,
the oldest queued sweep, and the heartbeat of each running sweep's worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Run, Sweep
from service.states import RunOutcome, SweepStatus


@dataclass(frozen=True)
class RunningSweep:
    sweep_id: int
    worker_id: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class Operations:
    sweeps: dict[SweepStatus, int]
    runs: dict[RunOutcome | None, int]  # None: pending, no outcome yet
    oldest_queued_at: datetime | None
    running: list[RunningSweep]


def operations(session: Session) -> Operations:
    sweeps = {status: 0 for status in SweepStatus}
    sweeps.update(session.execute(select(Sweep.status, func.count()).group_by(Sweep.status)).all())
    runs: dict[RunOutcome | None, int] = {outcome: 0 for outcome in [*RunOutcome, None]}
    runs.update(session.execute(select(Run.outcome, func.count()).group_by(Run.outcome)).all())
    oldest = session.scalar(select(func.min(Sweep.created_at)).where(Sweep.status == SweepStatus.QUEUED))
    running = [RunningSweep(*row) for row in session.execute(
        select(Sweep.id, Sweep.worker_id, Sweep.started_at, Sweep.heartbeat_at)
        .where(Sweep.status == SweepStatus.RUNNING).order_by(Sweep.id))]
    return Operations(sweeps, runs, oldest, running)
