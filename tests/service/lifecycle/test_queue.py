"""The sweep queue on SQLite and PostgreSQL: claims, heartbeats, give-backs, waiting for
resources, cancels, and a lease that was lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Run, Sweep
from service.db.session import session_scope
from service.errors import SweepAlreadyFinished
from service.lifecycle.queue import (
    claim_next_sweep,
    finish_sweep,
    heartbeat,
    holds,
    release_sweep,
    request_cancel,
)
from service.states import SweepStatus
from tests.factories import make_sweep, report, store


def cancel(factory: sessionmaker[Session], sweep_id: int) -> SweepStatus:
    with session_scope(factory) as session:
        return request_cancel(session, session.get(Sweep, sweep_id), heartbeat_timeout=60)


def outcomes(factory: sessionmaker[Session], sweep_id: int) -> list[str | None]:
    with factory() as session:
        return list(session.scalars(select(Run.outcome).where(Run.sweep_id == sweep_id).order_by(Run.id)))


def test_only_one_worker_wins_a_claim(session_factory: sessionmaker[Session]) -> None:
    first, second = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "a", heartbeat_timeout=60) == first  # oldest first
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "b", heartbeat_timeout=60) == second
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "c", heartbeat_timeout=60) is None
        assert heartbeat(session, first, "a") and not heartbeat(session, first, "b")


def test_a_sweep_whose_heartbeat_lapsed_is_claimed_again(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "dead", heartbeat_timeout=60) == sweep_id
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(seconds=61)))
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "alive", heartbeat_timeout=60) == sweep_id
        assert not heartbeat(session, sweep_id, "dead")  # the old holder learns it lost the sweep


def test_a_claim_records_what_its_worker_trains_with_and_a_new_claim_replaces_it(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    asked: list[str] = []

    def versions(torch: str) -> Callable[[str], dict[str, str | None]]:
        return lambda task: asked.append(task) or {"torch": torch, "task_plugin": None}

    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "a", heartbeat_timeout=60, environment=versions("2.13.0")) == sweep_id
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(seconds=61)))
    with session_scope(session_factory) as session:
        assert session.get_one(Sweep, sweep_id).environment == {"torch": "2.13.0", "task_plugin": None}
        assert claim_next_sweep(session, "b", heartbeat_timeout=60, environment=versions("2.14.0")) == sweep_id
    with session_scope(session_factory) as session:
        assert session.get_one(Sweep, sweep_id).environment == {"torch": "2.14.0", "task_plugin": None}
    assert asked == ["adding", "adding"]  # the sweep's task, for its plugin's version


def test_a_released_sweep_goes_back_to_the_queue(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "a", heartbeat_timeout=60)
        release_sweep(session, sweep_id, "a")
    with session_scope(session_factory) as session:
        assert session.get(Sweep, sweep_id).status == "queued"
        assert claim_next_sweep(session, "b", heartbeat_timeout=60) == sweep_id


def test_a_queued_sweep_is_cancelled_at_once_and_a_second_cancel_is_refused(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    assert cancel(session_factory, sweep_id) == "cancelled"
    assert set(outcomes(session_factory, sweep_id)) == {"cancelled"}
    with pytest.raises(SweepAlreadyFinished, match="already ended cancelled"):
        cancel(session_factory, sweep_id)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) is None  # nothing left to run


def test_a_running_sweep_is_flagged_and_its_finished_runs_keep_their_outcomes(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == sweep_id
    store(session_factory, sweep_id, [report(0, 0, outcome="diverged", trigger="loss_explosion",
                                             diverged_at_step=3)])
    assert cancel(session_factory, sweep_id) == "running"  # the worker ends it
    with session_factory() as session:
        assert session.get(Sweep, sweep_id).cancel_requested_at is not None
    assert outcomes(session_factory, sweep_id).count("diverged") == 1


def test_a_running_sweep_whose_worker_is_gone_is_cancelled_at_once(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(minutes=5)))
    assert cancel(session_factory, sweep_id) == "cancelled"
    assert set(outcomes(session_factory, sweep_id)) == {"cancelled"}


def test_a_sweep_waiting_for_resources_is_not_claimed_before_its_time(session_factory) -> None:
    first, second = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == first
        release_sweep(session, first, "w", detail="waiting for resources: needs 1 GPU per trial", wait_seconds=60)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == second  # the queue goes on
        assert session.get(Sweep, first).status_detail == "waiting for resources: needs 1 GPU per trial"
        session.execute(update(Sweep).where(Sweep.id == first).values(not_before=now() - timedelta(seconds=1)))
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == first
        assert session.get(Sweep, first).status_detail is None
        assert session.get(Sweep, first).claims == 1  # the look that found no room is not counted


def test_a_cancel_never_overwrites_a_sweep_that_finished_meanwhile(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
    with session_factory() as session:
        seen = session.get(Sweep, sweep_id)  # the API read it while it was running...
        with session_scope(session_factory) as other:  # ...and the worker finished it meanwhile
            other.execute(update(Run).where(Run.sweep_id == sweep_id).values(outcome="unconverged"))
            finish_sweep(other, sweep_id)
        with pytest.raises(SweepAlreadyFinished, match="already ended succeeded"):
            request_cancel(session, seen, heartbeat_timeout=60)
        session.commit()
    assert set(outcomes(session_factory, sweep_id)) == {"unconverged"}
    with session_factory() as session:
        assert session.get(Sweep, sweep_id).cancel_requested_at is None


def test_a_worker_whose_claim_lapsed_and_was_taken_holds_nothing(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "old", heartbeat_timeout=60)
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(minutes=5)))
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "new", heartbeat_timeout=60) == sweep_id
    with session_scope(session_factory) as session:
        assert not heartbeat(session, sweep_id, "old") and not holds(session, sweep_id, "old")
        release_sweep(session, sweep_id, "old")  # a stale worker's give-back changes nothing
        assert holds(session, sweep_id, "new")
        assert session.get(Sweep, sweep_id).claims == 2


def test_finished_statuses_are_defined_on_the_status_itself() -> None:
    assert {s.value for s in SweepStatus if s.is_finished()} == {"succeeded", "failed", "cancelled"}
    assert str(SweepStatus.RUNNING) == f"{SweepStatus.RUNNING}" == "running"
