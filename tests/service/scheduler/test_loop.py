"""The scheduler's tick on SQLite and PostgreSQL: it fires what is due and sleeps until the next
fire time, never longer than a minute."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Sweep, Webhook, WebhookDelivery
from service.db.session import session_scope
from service.lifecycle.schedules import Policies, create_schedule
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.scheduler.loop import MAX_SLEEP_SECONDS, Scheduler
from service.scheduler.policies import CatchUp
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


def test_a_fire_time_that_makes_no_sweep_is_sent_as_schedule_fire_missed(
        session_factory: sessionmaker[Session]) -> None:
    """Catch-up `none` after a scheduler was away: the passed fire time is missed, and a webhook
    that asked for schedule.fire_missed gets it in the outbox with what happened."""
    start = now().replace(second=0, microsecond=0) - timedelta(hours=3)
    with session_scope(session_factory) as session:
        schedule = create_schedule(session, name="hourly", cron=Cron.parse("0 * * * *"), spec=parse_spec(SPEC),
                                   limits=Limits(max_runs=1000), at=start, policies=Policies(catch_up=CatchUp.NONE))
        session.add(Webhook(schedule_id=schedule.id, url="https://93.184.215.14/", events=["schedule.fire_missed"],
                            secret="whsec_x", enabled=True, created_at=start))
        schedule_id = schedule.id
    Scheduler(session_factory, Settings(server_url="http://clipsweep.example")).tick(now())
    with session_scope(session_factory) as session:
        [delivery] = session.scalars(select(WebhookDelivery)).all()
        body = json.loads(delivery.body)
    assert body["type"] == "schedule.fire_missed" and body["data"]["outcome"] == "missed"
    assert body["text"].startswith("hourly: the fire time ") and "made no sweep (missed: " in body["text"]
    assert body["data"]["links"]["dashboard"] == f"http://clipsweep.example/schedules/{schedule_id}"
