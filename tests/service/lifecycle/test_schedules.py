"""Firing schedules at chosen moments, on SQLite and PostgreSQL: exactly one sweep per fire time,
catch-up after downtime, the concurrency policies, fresh seeds."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Schedule, ScheduleFire, Sweep
from service.db.session import session_scope
from service.lifecycle.schedules import Policies, create_schedule, fire_due
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.scheduler.policies import CatchUp, Concurrency, FireOutcome, SeedPolicy
from service.spec import parse_spec
from service.states import SweepStatus
from tests.factories import SPEC

LIMITS = Limits(max_runs=100_000)
DAY_ONE = datetime(2026, 1, 1, tzinfo=timezone.utc)  # a nightly schedule at 02:00 UTC first fires at 02:00


def nightly(factory: sessionmaker[Session], spec: dict[str, Any] = SPEC, **policies: object) -> int:
    with session_scope(factory) as session:
        return create_schedule(session, name="nightly", cron=Cron.parse("0 2 * * *"), spec=parse_spec(spec),
                               limits=LIMITS, at=DAY_ONE, policies=Policies(**policies)).id


def tick(factory: sessionmaker[Session], at: datetime) -> list[tuple[str, datetime, int | None]]:
    with session_scope(factory) as session:
        return [(f.outcome.value, f.scheduled_for, f.sweep_id)
                for f in fire_due(session, at, limits=LIMITS, heartbeat_timeout=60)]


def sweeps(factory: sessionmaker[Session]) -> list[tuple[datetime | None, SweepStatus, list[int] | int]]:
    with session_scope(factory) as session:
        return [(s.scheduled_for, s.status, s.spec["seeds"]) for s in session.scalars(select(Sweep).order_by(Sweep.id))]


def finish_all(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as session:
        session.execute(update(Sweep).values(status=SweepStatus.SUCCEEDED))


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=timezone.utc)


def test_a_fire_time_makes_one_sweep_and_a_second_tick_nothing(session_factory: sessionmaker[Session]) -> None:
    schedule_id = nightly(session_factory)
    assert tick(session_factory, at(1, 1, 59)) == []
    [(outcome, scheduled_for, sweep_id)] = tick(session_factory, at(1, 2, 0))
    assert (outcome, scheduled_for) == ("fired", at(1, 2))
    assert tick(session_factory, at(1, 2, 0)) == [] and tick(session_factory, at(1, 2, 1)) == []
    with session_scope(session_factory) as session:
        sweep = session.get_one(Sweep, sweep_id)
        assert (sweep.schedule_id, sweep.scheduled_for) == (schedule_id, at(1, 2))
        assert sweep.name == "nightly 2026-01-01 02:00Z"
        assert session.get_one(Schedule, schedule_id).next_fire_at == at(2, 2)


def test_three_days_down_give_one_catch_up_sweep_with_latest_and_none_with_none(
        session_factory: sessionmaker[Session]) -> None:
    nightly(session_factory)
    back = at(4, 3)  # down from before the first fire time until an hour after the fourth
    fires = tick(session_factory, back)
    assert [(o, t) for o, t, _ in fires] == [("missed", at(3, 2)), ("fired", at(4, 2))]
    assert [t for t, _, _ in sweeps(session_factory)] == [at(4, 2)]
    with session_scope(session_factory) as session:
        missed = session.scalars(select(ScheduleFire).where(ScheduleFire.outcome == FireOutcome.MISSED)).one()
        assert missed.detail == ("the fire times up to 2026-01-03 02:00Z since 2026-01-01 02:00Z passed while no "
                                 "scheduler ran (catch_up latest)")
    with session_scope(session_factory) as session:  # the same downtime under catch_up none
        session.execute(update(Schedule).values(catch_up=CatchUp.NONE, next_fire_at=at(5, 2)))
    assert [(o, t) for o, t, _ in tick(session_factory, at(8, 3))] == [("missed", at(8, 2))]
    assert len(sweeps(session_factory)) == 1


def test_latest_past_its_starting_deadline_is_missed_too(session_factory: sessionmaker[Session]) -> None:
    nightly(session_factory, starting_deadline_seconds=3600)
    assert [(o, t) for o, t, _ in tick(session_factory, at(1, 4))] == [("missed", at(1, 2))]


def test_catch_up_all_fires_each_missed_time_up_to_ten(session_factory: sessionmaker[Session]) -> None:
    nightly(session_factory, catch_up=CatchUp.ALL, concurrency=Concurrency.QUEUE)
    fires = tick(session_factory, at(13, 3))  # 13 fire times passed
    assert [o for o, _, _ in fires] == ["missed"] + ["fired"] * 10
    assert [t for t, _, _ in sweeps(session_factory)] == [at(day, 2) for day in range(4, 14)]


def test_skip_records_a_fire_while_the_last_sweep_runs_and_replace_cancels_it(
        session_factory: sessionmaker[Session]) -> None:
    schedule_id = nightly(session_factory)
    tick(session_factory, at(1, 2))
    [(outcome, _, sweep_id)] = tick(session_factory, at(2, 2))
    assert outcome == "skipped" and sweep_id is None
    with session_scope(session_factory) as session:
        detail = session.scalars(select(ScheduleFire.detail).where(ScheduleFire.outcome == FireOutcome.SKIPPED)).one()
        assert detail.endswith("is still queued (concurrency skip)")
        session.execute(update(Schedule).where(Schedule.id == schedule_id).values(concurrency=Concurrency.REPLACE))
    assert [o for o, _, _ in tick(session_factory, at(3, 2))] == ["fired"]
    assert [(t, status) for t, status, _ in sweeps(session_factory)] == [
        (at(1, 2), SweepStatus.CANCELLED), (at(3, 2), SweepStatus.QUEUED)]


def test_fresh_seeds_take_a_new_block_each_fire(session_factory: sessionmaker[Session]) -> None:
    nightly(session_factory, seed_policy=SeedPolicy.FRESH)
    for day in (1, 2, 3):
        tick(session_factory, at(day, 2))
        finish_all(session_factory)
    assert [seeds for _, _, seeds in sweeps(session_factory)] == [3, [3, 4, 5], [6, 7, 8]]


def test_fresh_adaptive_seeds_start_after_the_most_the_last_fire_could_take(
        session_factory: sessionmaker[Session]) -> None:
    nightly(session_factory, {**SPEC, "seeds": {"adaptive": {"min": 4, "max": 10}}}, seed_policy=SeedPolicy.FRESH)
    for day in (1, 2):
        tick(session_factory, at(day, 2))
        finish_all(session_factory)
    assert [seeds["adaptive"]["first"] for _, _, seeds in sweeps(session_factory)] == [0, 10]


def test_a_fire_time_another_scheduler_handled_is_not_fired_again(session_factory: sessionmaker[Session]) -> None:
    schedule_id = nightly(session_factory)
    tick(session_factory, at(1, 2))
    finish_all(session_factory)
    with session_scope(session_factory) as session:  # as a scheduler that read the schedule before that tick
        session.execute(update(Schedule).where(Schedule.id == schedule_id).values(next_fire_at=at(1, 2)))
    assert tick(session_factory, at(1, 2, 1)) == []
    assert [t for t, _, _ in sweeps(session_factory)] == [at(1, 2)]
    with session_scope(session_factory) as session:
        assert len(session.scalars(select(ScheduleFire)).all()) == 1


def test_a_fire_time_after_a_daylight_saving_jump_is_computed_in_the_zone(
        session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        create_schedule(session, name="berlin", cron=Cron.parse("30 2 * * *", "Europe/Berlin"), spec=parse_spec(SPEC),
                        limits=LIMITS, at=datetime(2026, 3, 28, 12, tzinfo=timezone.utc))
    fires = tick(session_factory, datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc))  # 03:00 CEST: 02:30 did not exist
    assert [(o, t) for o, t, _ in fires] == [("fired", datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc))]
