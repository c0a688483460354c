"""Schedules: storing one, and firing what is due at a moment (a scheduler's tick).

Exactly once: a sweep made for a fire time carries (schedule_id, scheduled_for) under a unique
index, and each fire time's outcome is one row of schedule_fires under another; on PostgreSQL the
due schedules are taken with SKIP LOCKED, so several schedulers share them without waiting on one
another. Each schedule fires in a savepoint: one that a concurrent scheduler already handled
rolls back alone. The caller commits the tick.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.analysis.comparison import Thresholds
from service.db.models import Schedule, ScheduleFire, ScheduleVersion, Sweep
from service.errors import InvalidRequest
from service.lifecycle.queue import request_cancel
from service.lifecycle.submit import Limits, check_limits, create_sweep
from service.scheduler.cron import Cron
from service.scheduler.policies import (
    MAX_CATCH_UP,
    ON_TIME_SECONDS,
    CatchUp,
    Concurrency,
    FireOutcome,
    SeedPolicy,
)
from service.spec import INT32_MAX, SweepSpec, resolve_spec
from service.spec_seeds import AdaptiveSeeds
from service.states import SweepStatus


@dataclass(frozen=True)
class Policies:
    concurrency: Concurrency = Concurrency.SKIP
    catch_up: CatchUp = CatchUp.LATEST
    starting_deadline_seconds: int = 6 * 3600
    seed_policy: SeedPolicy = SeedPolicy.SAME


def create_schedule(session: Session, *, name: str, cron: Cron, spec: SweepSpec, limits: Limits, at: datetime,
                    policies: Policies = Policies(), created_by: str | None = None,
                    thresholds: Thresholds | None = None, baseline_sweep_id: int | None = None) -> Schedule:
    """A schedule whose spec is checked exactly as POST /sweeps checks one, first firing at the
    first fire time after `at`, its sweeps compared with `baseline_sweep_id` (None: each with the
    previous succeeded one) under `thresholds`. The caller commits."""
    spec = resolve_spec(spec)
    check_limits(spec, limits)
    first = cron.fire_times(at, 1)
    if not first:
        raise InvalidRequest([{"loc": ["cron"], "type": "value_error",
                               "msg": f"{cron.expression!r} never fires after {at:%Y-%m-%d}"}], source="body")
    schedule = Schedule(name=name, cron=cron.expression, timezone=cron.timezone, spec=spec.model_dump(mode="json"),
                        concurrency=policies.concurrency, catch_up=policies.catch_up,
                        starting_deadline_seconds=policies.starting_deadline_seconds,
                        seed_policy=policies.seed_policy, enabled=True, next_fire_at=first[0], sweeps_made=0,
                        created_at=at, created_by=created_by, thresholds=_stored(thresholds),
                        baseline_sweep_id=_baseline(session, baseline_sweep_id))
    session.add(schedule)
    session.flush()
    session.add(ScheduleVersion(schedule_id=schedule.id, version=1, spec=schedule.spec, created_at=at,
                                created_by=created_by))
    return schedule


def _stored(thresholds: Thresholds | None) -> dict[str, float | int] | None:
    return None if thresholds is None else dataclasses.asdict(thresholds)


def _baseline(session: Session, sweep_id: int | None) -> int | None:
    """A sweep to pin as the baseline must exist."""
    if sweep_id is not None and session.get(Sweep, sweep_id) is None:
        raise InvalidRequest([{"loc": ["baseline", "sweep_id"], "type": "value_error",
                               "msg": f"no sweep with id {sweep_id} to compare with"}], source="body")
    return sweep_id


KEEP: Any = object()  # update_schedule: leave the baseline as it is


def update_schedule(session: Session, schedule: Schedule, at: datetime, *, limits: Limits, cron: Cron | None = None,
                    policies: Policies | None = None, enabled: bool | None = None, spec: SweepSpec | None = None,
                    by: str | None = None, thresholds: Thresholds | None = None,
                    baseline_sweep_id: int | None = KEEP) -> Schedule:
    """Change when and how a schedule fires, or what. A new cron expression or time zone, or a
    paused schedule resumed, fires next at its first fire time after `at`: what passed meanwhile
    is not caught up. A new spec, checked as a submit is against `limits`, is a new version; the
    old ones are kept."""
    if spec is not None:
        resolved = resolve_spec(spec)
        check_limits(resolved, limits)
        stored = resolved.model_dump(mode="json")
        if stored != schedule.spec:
            schedule.spec, schedule.version = stored, schedule.version + 1
            session.add(ScheduleVersion(schedule_id=schedule.id, version=schedule.version, spec=stored,
                                        created_at=at, created_by=by))
    if cron is not None:
        schedule.cron, schedule.timezone = cron.expression, cron.timezone
    if policies is not None:
        schedule.concurrency, schedule.catch_up = policies.concurrency, policies.catch_up
        schedule.starting_deadline_seconds = policies.starting_deadline_seconds
        schedule.seed_policy = policies.seed_policy
    if thresholds is not None:
        schedule.thresholds = _stored(thresholds)
    if baseline_sweep_id is not KEEP:
        schedule.baseline_sweep_id = _baseline(session, baseline_sweep_id)
    resumed = enabled is True and not schedule.enabled
    if enabled is not None:
        schedule.enabled = enabled
    if cron is not None or resumed:
        following = Cron(schedule.cron, schedule.timezone).fire_times(at, 1)
        if not following:
            raise InvalidRequest([{"loc": ["cron"], "type": "value_error",
                                   "msg": f"{schedule.cron!r} never fires after {at:%Y-%m-%d}"}], source="body")
        schedule.next_fire_at = following[0]
    session.flush()
    return schedule


def fire_due(session: Session, at: datetime, *, limits: Limits, heartbeat_timeout: float) -> list[ScheduleFire]:
    """Fire every enabled schedule whose next fire time is at or before `at`; what each fire
    time came to, oldest first per schedule."""
    due = session.scalars(
        select(Schedule).where(Schedule.enabled, Schedule.deleted_at.is_(None), Schedule.next_fire_at <= at)
        .order_by(Schedule.next_fire_at, Schedule.id).with_for_update(skip_locked=True)).all()
    fires: list[ScheduleFire] = []
    for schedule in due:
        try:
            with session.begin_nested():
                fires += _fire(session, schedule, at, limits, heartbeat_timeout)
        except IntegrityError:  # another scheduler handled these fire times first
            session.expire(schedule)
    return fires


def _fire(session: Session, schedule: Schedule, at: datetime, limits: Limits,
          heartbeat_timeout: float) -> list[ScheduleFire]:
    cron = Cron(schedule.cron, schedule.timezone)
    passed = cron.latest_fire_times(schedule.next_fire_at, at, MAX_CATCH_UP + 1)  # newest first
    late = at - passed[0] if passed else timedelta(0)
    if schedule.catch_up is CatchUp.ALL:
        chosen = passed[:MAX_CATCH_UP]
    elif schedule.catch_up is CatchUp.LATEST:
        chosen = passed[:1] if late <= timedelta(seconds=schedule.starting_deadline_seconds) else []
    else:  # none: only a fire time found on time, not one that passed while no scheduler ran
        chosen = passed[:1] if late <= timedelta(seconds=ON_TIME_SECONDS) else []
    fires = []
    left = [t for t in passed if t not in chosen]
    if left:  # one row for them all, however long the scheduler was away
        since = "" if len(passed) > MAX_CATCH_UP else f" since {left[-1]:%Y-%m-%d %H:%M}Z"
        fires.append(_record(session, schedule, left[0], FireOutcome.MISSED, at, detail=(
            f"the fire times up to {left[0]:%Y-%m-%d %H:%M}Z{since} passed while no scheduler ran "
            f"(catch_up {schedule.catch_up.value})")))
    for moment in reversed(chosen):
        fires.append(fire(session, schedule, moment, at, limits=limits, heartbeat_timeout=heartbeat_timeout))
    following = cron.fire_times(at, 1)
    if following:
        schedule.next_fire_at = following[0]
    else:
        schedule.enabled = False  # it will never fire again
    return fires


def fire(session: Session, schedule: Schedule, scheduled_for: datetime, at: datetime, *, limits: Limits,
         heartbeat_timeout: float, outcome: FireOutcome = FireOutcome.FIRED) -> ScheduleFire:
    """One fire time: a sweep, unless the concurrency policy or the limits say otherwise."""
    active = session.execute(select(Sweep).where(
        Sweep.schedule_id == schedule.id, Sweep.status.in_([SweepStatus.QUEUED, SweepStatus.RUNNING]))
        .order_by(Sweep.id)).scalars().all()
    if active and schedule.concurrency is Concurrency.SKIP:
        return _record(session, schedule, scheduled_for, FireOutcome.SKIPPED, at, detail=(
            f"sweep {active[-1].id} of this schedule is still {active[-1].status.value} (concurrency skip)"))
    spec = SweepSpec.model_validate(schedule.spec)
    seeds = _seeds(spec, schedule.seed_policy, schedule.sweeps_made)
    if seeds is None:
        return _record(session, schedule, scheduled_for, FireOutcome.REFUSED, at,
                       detail=f"fresh seeds past {INT32_MAX} after {schedule.sweeps_made} sweeps")
    spec = spec.model_copy(update={"name": f"{schedule.name[:150]} {scheduled_for:%Y-%m-%d %H:%M}Z", "seeds": seeds})
    if schedule.concurrency is Concurrency.REPLACE:
        for sweep in active:
            request_cancel(session, sweep, heartbeat_timeout=heartbeat_timeout)
    try:
        with session.begin_nested():
            sweep = create_sweep(session, spec, limits=limits, schedule_id=schedule.id, scheduled_for=scheduled_for,
                                 created_by=schedule.created_by)
    except InvalidRequest as exc:  # the limits were lowered since the schedule was made
        return _record(session, schedule, scheduled_for, FireOutcome.REFUSED, at, detail=str(exc))
    schedule.sweeps_made += 1
    return _record(session, schedule, scheduled_for, outcome, at, sweep_id=sweep.id)


def _seeds(spec: SweepSpec, policy: SeedPolicy, block: int) -> list[int] | int | AdaptiveSeeds | None:
    """The spec's seeds, or with `fresh` the `block`-th block of as many new ones (None past the
    range seeds may take)."""
    if policy is SeedPolicy.SAME or block == 0:
        return spec.seeds
    if isinstance(spec.seeds, AdaptiveSeeds):  # the block of `max` seeds after the last block's
        rule = spec.seeds.adaptive
        first = rule.first + block * rule.max
        fits = first + rule.max - 1 <= INT32_MAX
        return AdaptiveSeeds(adaptive=rule.model_copy(update={"first": first})) if fits else None
    seeds = spec.seed_list
    span = max(seeds) + 1
    shifted = [seed + block * span for seed in seeds]
    return shifted if max(shifted) <= INT32_MAX else None


def _record(session: Session, schedule: Schedule, scheduled_for: datetime, outcome: FireOutcome, at: datetime,
            *, sweep_id: int | None = None, detail: str | None = None) -> ScheduleFire:
    row = ScheduleFire(schedule_id=schedule.id, scheduled_for=scheduled_for, outcome=outcome, sweep_id=sweep_id,
                       schedule_version=schedule.version, detail=detail, recorded_at=at)
    session.add(row)
    session.flush()  # a fire time already recorded raises here, inside the schedule's savepoint
    return row
