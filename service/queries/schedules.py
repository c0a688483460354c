"""Reading schedules: one, all of them, and each one's fires with their sweeps."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Schedule, ScheduleFire, Sweep
from service.errors import ScheduleNotFound
from service.spec import INT32_MAX


def get_schedule(session: Session, schedule_id: int) -> Schedule:
    """A schedule that was not deleted; ScheduleNotFound otherwise."""
    schedule = session.get(Schedule, schedule_id) if 0 <= schedule_id <= INT32_MAX else None
    if schedule is None or schedule.deleted_at is not None:
        raise ScheduleNotFound(schedule_id)
    return schedule


def list_schedules(session: Session, *, limit: int, offset: int) -> tuple[list[Schedule], int]:
    live = Schedule.deleted_at.is_(None)
    items = session.scalars(select(Schedule).where(live).order_by(Schedule.id).limit(limit).offset(offset)).all()
    return list(items), session.scalar(select(func.count()).select_from(Schedule).where(live)) or 0


def schedule_fires(session: Session, schedule_id: int, *, limit: int,
                   offset: int) -> tuple[list[tuple[ScheduleFire, Sweep | None]], int]:
    """The schedule's fires, newest first, each with its sweep (None when skipped, missed or refused)."""
    rows = session.execute(
        select(ScheduleFire, Sweep).outerjoin(Sweep, Sweep.id == ScheduleFire.sweep_id)
        .where(ScheduleFire.schedule_id == schedule_id)
        .order_by(ScheduleFire.scheduled_for.desc(), ScheduleFire.id.desc()).limit(limit).offset(offset)).all()
    total = session.scalar(select(func.count()).select_from(ScheduleFire)
                           .where(ScheduleFire.schedule_id == schedule_id)) or 0
    return [(fire, sweep) for fire, sweep in rows], total
