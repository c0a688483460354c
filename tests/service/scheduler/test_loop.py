"""The scheduler's tick on SQLite and PostgreSQL: it fires what is due and sleeps until the next
fire time, never longer than a minute."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Sweep
from service.db.session import session_scope
from service.lifecycle.schedules import create_schedule
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.scheduler.loop import MAX_SLEEP_SECONDS, Scheduler
from service.settings import Settings
from service.spec import parse_spec
from tests.factories import SPEC


def test_a_tick_fires_what_is_due_and_sleeps_until_the_next_fire_time(
        session_factory: sessionmaker[Session]) -> None:
    scheduler = Scheduler(session_factory, Settings())
    assert scheduler.tick(now()) == MAX_SLEEP_SECONDS  # nothing scheduled
    start = now()
    with session_scope(session_factory) as session:  # every minute: the first fire within 60 s
        create_schedule(session, name="minutely", cron=Cron.parse("* * * * *"), spec=parse_spec(SPEC),
                        limits=Limits(max_runs=1000), at=start)
    first = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert 0 <= scheduler.tick(start) <= (first - start).total_seconds() + 1
    assert scheduler.tick(first) <= MAX_SLEEP_SECONDS  # fires it; the next is a minute on
    with session_scope(session_factory) as session:
        assert list(session.scalars(select(Sweep.scheduled_for))) == [first]
