"""The scheduler as real processes: `clipsweep scheduler` alone (one per SQLite database, stopped
cleanly by SIGTERM), and inside a real `clipsweep serve`, where a schedule firing every minute
makes its sweep at the minute, once, across a restart, and the worker trains it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db import schema
from service.db.models import Sweep, Webhook, WebhookDelivery
from service.db.session import make_engine, make_session_factory, session_scope
from service.lifecycle.outbox import enqueue
from service.lifecycle.schedules import create_schedule
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.scheduler.loop import MAX_SLEEP_SECONDS
from service.settings import Settings
from service.spec import parse_spec
from service.states import DeliveryState, WebhookEvent
from service.webhooks.signing import new_secret
from tests.harness import ROOT, Server
from tests.receiver import Delivery, Receiver

pytestmark = pytest.mark.slow
TINY = {"task": {"name": "quadratic"}, "learning_rates": [0.1], "seeds": 1, "budget": {"max_steps": 10}}


def scheduler(data_dir: Path, log: Path, database_url: str | None = None,
              **settings: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
    env["CLIPSWEEP_DATA_DIR"] = str(data_dir)
    env.update({f"CLIPSWEEP_{name.upper()}": value for name, value in settings.items()})
    if database_url:
        env["CLIPSWEEP_DATABASE_URL"] = database_url
    return subprocess.Popen([sys.executable, "-m", "service.cli", "scheduler"], cwd=ROOT, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_one_scheduler_per_sqlite_database_and_sigterm_stops_it(tmp_path: Path) -> None:
    first = scheduler(tmp_path, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 60
        while "scheduler running" not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        second = subprocess.run([sys.executable, "-m", "service.cli", "scheduler"], cwd=ROOT, capture_output=True,
                                text=True, timeout=60, env={**os.environ, "CLIPSWEEP_DATA_DIR": str(tmp_path)})
        assert second.returncode != 0
        assert f"pid {first.pid}" in second.stderr and "SQLite supports one scheduler" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0
    assert "scheduler stopped" in (tmp_path / "first.log").read_text()


@pytest.mark.parametrize("kill_one", [False, True], ids=["two-schedulers", "one-killed-mid-tick"])
def test_two_schedulers_on_postgresql_make_exactly_one_sweep_per_fire_time(
        pg_url: str, tmp_path: Path, kill_one: bool) -> None:
    """100 schedules due at once, two real schedulers: 100 sweeps, none twice; with the first
    killed with SIGKILL as it starts firing, the second still makes exactly one per schedule."""
    schema.upgrade(pg_url)
    factory = make_session_factory(make_engine(pg_url))
    due = now().replace(second=0, microsecond=0)
    with session_scope(factory) as session:
        for n in range(100):
            create_schedule(session, name=f"due-{n}", cron=Cron.parse("* * * * *"), spec=parse_spec(TINY),
                            limits=Limits(max_runs=100), at=due - timedelta(minutes=1))
    first = scheduler(tmp_path, tmp_path / "first.log", pg_url)
    if kill_one:  # as its first tick begins: the tick is one transaction, so it leaves all or nothing
        deadline = time.monotonic() + 60
        while "scheduler running" not in (tmp_path / "first.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait()
    second = scheduler(tmp_path, tmp_path / "second.log", pg_url)
    try:
        deadline = time.monotonic() + 90
        while len({s for s, _ in _sweeps(factory)}) < 100 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
    made = _sweeps(factory)
    logs = "".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))
    # Each schedule's sweep stays queued (no worker), so a later minute is skipped, never a second sweep.
    assert len(made) == 100 and len({schedule for schedule, _ in made}) == 100, logs


def _sweeps(factory: sessionmaker[Session]) -> list[tuple[int, datetime]]:
    with session_scope(factory) as session:
        return [(row.schedule_id, row.scheduled_for)
                for row in session.execute(select(Sweep.schedule_id, Sweep.scheduled_for)
                                           .where(Sweep.schedule_id.is_not(None)))]


def test_a_restarted_serve_does_not_fire_a_fire_time_again_and_fires_the_next_at_the_minute(tmp_path: Path) -> None:
    """serve is stopped right after a minutely schedule fired and started again: the fire time it
    handled gets no second sweep, and the next one gets exactly one, made at its minute (not
    before, and within a tick), which the worker trains. (One test for both: each waits for a
    minute to turn.)"""
    first = Server(tmp_path, env={"CLIPSWEEP_WORKER_POLL_SECONDS": "0.3"})
    factory = make_session_factory(make_engine(Settings(data_dir=tmp_path).resolved_database_url))
    with session_scope(factory) as session:  # made a minute ago: its first fire time is already due
        create_schedule(session, name="minutely", cron=Cron.parse("* * * * *"), spec=parse_spec(TINY),
                        limits=Limits(max_runs=100), at=now() - timedelta(minutes=1))
    try:
        _wait_for_sweeps(factory, 1, timedelta(0), first)
    finally:
        first.stop()
    second = Server(tmp_path, env={"CLIPSWEEP_WORKER_POLL_SECONDS": "0.3"})
    try:
        _wait_for_sweeps(factory, 2, timedelta(seconds=60), second)
        time.sleep(3)  # room for a duplicate to appear, were there one
        made = _sweeps(factory)
        with session_scope(factory) as session:
            on_time = session.scalars(select(Sweep).order_by(Sweep.id.desc()).limit(1)).one()
            session.expunge(on_time)
        late = (on_time.created_at - on_time.scheduled_for).total_seconds()
        assert 0 <= late <= MAX_SLEEP_SECONDS + 15, late  # at its minute, or caught up after the restart
        assert second.wait_finished(on_time.id)["status"] == "succeeded"
    finally:
        second.stop()
    assert len(made) == len(set(made)) and len({at for _, at in made}) == len(made) >= 2, made
    assert all(at.second == 0 for _, at in made)  # nominal fire times, one sweep each


def _wait_for_sweeps(factory: sessionmaker[Session], count: int, until: timedelta, server: Server) -> None:
    deadline = time.monotonic() + until.total_seconds() + 75  # a tick is at most 60 s apart
    while len(_sweeps(factory)) < count:
        assert time.monotonic() < deadline, f"no sweep {count} in time\n{server.log()[-4000:]}"
        time.sleep(0.5)


def test_a_scheduler_killed_between_sending_and_recording_resends_with_the_same_id(tmp_path: Path) -> None:
    """The receiver kills the scheduler (SIGKILL) when the delivery arrives, before answering: the
    attempt was sent and never recorded. A new scheduler sends it again once its lease passes
    (3 × the 1 s timeout + 5 s), with the same webhook-id, and records one delivered attempt."""
    url = Settings(data_dir=tmp_path).resolved_database_url
    schema.upgrade(url)
    factory = make_session_factory(make_engine(url))
    processes: list[subprocess.Popen[bytes]] = []

    def kill_the_first_time(delivery: Delivery) -> bool:
        if len(processes) == 1:
            processes[0].kill()
            processes[0].wait()
            return False  # no answer: the connection drops with the sender
        return True

    with Receiver(on_request=kill_the_first_time) as receiver:
        with session_scope(factory) as session:
            made = create_schedule(session, name="hooked", cron=Cron.parse("@daily"), spec=parse_spec(TINY),
                                   limits=Limits(max_runs=100), at=now())
            session.add(Webhook(schedule_id=made.id, url=receiver.url, events=["sweep.failed"], secret=new_secret(),
                                enabled=True, created_at=now()))
            session.flush()
            enqueue(session, made.id, WebhookEvent.SWEEP_FAILED, {"text": "sweep 1 failed"}, now())
        settings = {"webhook_allow_private": "true", "webhook_timeout_seconds": "1"}
        processes.append(scheduler(tmp_path, tmp_path / "first.log", **settings))
        assert len(receiver.wait_for(1, timeout=60)) == 1
        processes.append(scheduler(tmp_path, tmp_path / "second.log", **settings))
        try:
            got = receiver.wait_for(2, timeout=60)
        finally:
            processes[1].send_signal(signal.SIGTERM)
            processes[1].wait(timeout=30)
    logs = "".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))
    assert len(got) == 2 and got[0].msg_id == got[1].msg_id and got[0].body == got[1].body, logs
    with session_scope(factory) as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.state, delivery.attempts, delivery.msg_id) == (DeliveryState.DELIVERED, 1, got[0].msg_id)
