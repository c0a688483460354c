"""What an operator watches, read in a few aggregate queries: sweeps by status, runs by outcome,
the oldest queued sweep, the heartbeat of each running sweep's worker, each schedule's lateness
and fires by outcome, alerts by state and webhook deliveries by state (with the oldest pending)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Alert, Run, Schedule, ScheduleFire, Sweep, WebhookDelivery
from service.scheduler.policies import FireOutcome
from service.states import AlertState, DeliveryState, RunOutcome, SweepStatus


@dataclass(frozen=True)
class RunningSweep:
    sweep_id: int
    worker_id: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class ScheduleHealth:
    schedule_id: int
    name: str
    lateness_seconds: float | None  # from its last fire time to the sweep made for it
    fires: dict[FireOutcome, int]


@dataclass(frozen=True)
class Operations:
    sweeps: dict[SweepStatus, int]
    runs: dict[RunOutcome | None, int]  # None: pending, no outcome yet
    oldest_queued_at: datetime | None
    running: list[RunningSweep]
    schedules: list[ScheduleHealth]
    alerts: dict[AlertState, int]
    deliveries: dict[DeliveryState, int]
    oldest_pending_delivery_at: datetime | None  # a receiver down, or no scheduler sending


def operations(session: Session) -> Operations:
    sweeps = {status: 0 for status in SweepStatus}
    sweeps.update(session.execute(select(Sweep.status, func.count()).group_by(Sweep.status)).all())
    runs: dict[RunOutcome | None, int] = {outcome: 0 for outcome in [*RunOutcome, None]}
    runs.update(session.execute(select(Run.outcome, func.count()).group_by(Run.outcome)).all())
    oldest = session.scalar(select(func.min(Sweep.created_at)).where(Sweep.status == SweepStatus.QUEUED))
    running = [RunningSweep(*row) for row in session.execute(
        select(Sweep.id, Sweep.worker_id, Sweep.started_at, Sweep.heartbeat_at)
        .where(Sweep.status == SweepStatus.RUNNING).order_by(Sweep.id))]
    alerts = {state: 0 for state in AlertState}
    alerts.update(session.execute(select(Alert.state, func.count()).group_by(Alert.state)).all())
    deliveries = {state: 0 for state in DeliveryState}
    by_state = select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
    deliveries.update(session.execute(by_state).all())
    pending = session.scalar(select(func.min(WebhookDelivery.created_at))
                             .where(WebhookDelivery.state == DeliveryState.PENDING))
    return Operations(sweeps, runs, oldest, running, _schedules(session), alerts, deliveries, pending)


def _schedules(session: Session) -> list[ScheduleHealth]:
    live = list(session.execute(select(Schedule.id, Schedule.name).where(Schedule.deleted_at.is_(None))
                                .order_by(Schedule.id)))
    counts: dict[int, dict[FireOutcome, int]] = {i: {o: 0 for o in FireOutcome} for i, _ in live}
    for schedule_id, outcome, n in session.execute(
            select(ScheduleFire.schedule_id, ScheduleFire.outcome, func.count())
            .group_by(ScheduleFire.schedule_id, ScheduleFire.outcome)):
        if schedule_id in counts:
            counts[schedule_id][outcome] = n
    last = (select(ScheduleFire.schedule_id, func.max(ScheduleFire.scheduled_for).label("at"))
            .where(ScheduleFire.outcome == FireOutcome.FIRED).group_by(ScheduleFire.schedule_id).subquery())
    made = session.execute(
        select(ScheduleFire.schedule_id, ScheduleFire.scheduled_for, Sweep.created_at)
        .join(last, (last.c.schedule_id == ScheduleFire.schedule_id) & (last.c.at == ScheduleFire.scheduled_for))
        .join(Sweep, Sweep.id == ScheduleFire.sweep_id))
    lateness = {schedule_id: (created - scheduled).total_seconds() for schedule_id, scheduled, created in made}
    return [ScheduleHealth(i, name, lateness.get(i), counts[i]) for i, name in live]
