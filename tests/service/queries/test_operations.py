"""operations() on SQLite and PostgreSQL: the aggregates /metrics reports."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Sweep
from service.db.session import session_scope
from service.lifecycle.queue import claim_next_sweep
from service.lifecycle.schedules import create_schedule, fire_due
from service.lifecycle.submit import Limits
from service.queries.operations import operations
from service.scheduler.cron import Cron
from service.scheduler.policies import FireOutcome
from service.spec import parse_spec
from service.states import RunOutcome, SweepStatus
from tests.factories import SPEC, make_sweep, report, store


def test_sweeps_by_status_runs_by_outcome_the_oldest_queued_and_the_running(
        session_factory: sessionmaker[Session]) -> None:
    running, queued = make_sweep(session_factory), make_sweep(session_factory)  # 12 runs each
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "worker-a", heartbeat_timeout=60)
    store(session_factory, running, [report(0, 0), report(2, 1, "diverged", trigger="loss_explosion")])
    with session_scope(session_factory) as session:
        state = operations(session)
        created = session.get_one(Sweep, queued).created_at
    assert state.sweeps[SweepStatus.RUNNING] == 1 and state.sweeps[SweepStatus.QUEUED] == 1
    assert state.sweeps[SweepStatus.SUCCEEDED] == 0
    assert state.runs == {RunOutcome.CONVERGED: 0, RunOutcome.DIVERGED: 1, RunOutcome.UNCONVERGED: 1,
                          RunOutcome.FAILED: 0, RunOutcome.CANCELLED: 0, None: 22}
    assert state.oldest_queued_at == created
    assert [(r.sweep_id, r.worker_id) for r in state.running] == [(running, "worker-a")]
    assert state.running[0].heartbeat_at is not None


def test_each_schedules_lateness_and_fires(session_factory: sessionmaker[Session]) -> None:
    due = now().replace(second=0, microsecond=0)
    with session_scope(session_factory) as session:
        create_schedule(session, name="minutely", cron=Cron.parse("* * * * *"), spec=parse_spec(SPEC),
                        limits=Limits(max_runs=100), at=due - timedelta(minutes=1))
    with session_scope(session_factory) as session:
        fire_due(session, due + timedelta(seconds=5), limits=Limits(max_runs=100), heartbeat_timeout=60)
        session.execute(update(Sweep).values(created_at=due + timedelta(seconds=5)))
    with session_scope(session_factory) as session:
        [health] = operations(session).schedules
    assert (health.name, health.lateness_seconds) == ("minutely", 5.0)
    assert health.fires[FireOutcome.FIRED] == 1 and health.fires[FireOutcome.MISSED] == 0
