"""Why a queued sweep waits, on SQLite and PostgreSQL: behind the sweep a worker trains, with
about how long that one has left at its pace so far, and the queued sweeps ahead of it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Sweep
from service.db.session import session_scope
from service.lifecycle.queue import claim_next_sweep, record_live_steps, release_sweep
from service.queries.sweeps import queue_waits
from tests.factories import make_sweep, report, store


def waits(factory: sessionmaker[Session]) -> dict[int, str | None]:
    with session_scope(factory) as session:
        sweeps = list(session.query(Sweep).order_by(Sweep.id))
        found = queue_waits(session, sweeps)
        return {s.id: found.get(s.id) for s in sweeps}


def test_a_queued_sweep_says_what_it_waits_behind_and_for_about_how_long(
        session_factory: sessionmaker[Session]) -> None:
    first, second, third = (make_sweep(session_factory) for _ in range(3))  # 12 runs each
    assert waits(session_factory) == {first: "next in the queue, waiting for a worker",
                                      second: f"queued behind sweep {first}",
                                      third: f"queued behind sweep {first} and 1 more"}

    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w1", heartbeat_timeout=60) == first
    assert waits(session_factory) == {
        first: None,
        second: f"queued behind sweep {first}, nothing of it trained yet to estimate from",
        third: f"queued behind sweep {first}, nothing of it trained yet to estimate from; 1 queued sweep ahead"}

    # 3 of 12 runs done in 10 minutes: 9 left take about 30 more.
    store(session_factory, first, [report(0, 0), report(0, 1), report(0, 2)])
    with session_scope(session_factory) as session:
        session.execute(update(Sweep).where(Sweep.id == first).values(started_at=now() - timedelta(minutes=10)))
    assert waits(session_factory)[second] == f"queued behind sweep {first}, about 30 min left"

    # A sweep that stored its own reason keeps it.
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w2", heartbeat_timeout=60) == second
        release_sweep(session, second, "w2", detail="waiting for 64 CPUs", wait_seconds=60)
    assert waits(session_factory)[second] is None
    assert waits(session_factory)[third] == f"queued behind sweep {first}, about 30 min left; 1 queued sweep ahead"

    # Counted in steps, the runs still training count too: 30 steps more is 6 of 12 runs' budget.
    with session_scope(session_factory) as session:
        record_live_steps(session, first, 30)
    assert waits(session_factory)[third] == f"queued behind sweep {first}, about 10 min left; 1 queued sweep ahead"


def test_hours_read_as_hours(session_factory: sessionmaker[Session]) -> None:
    first, second = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w1", heartbeat_timeout=60)
        session.execute(update(Sweep).where(Sweep.id == first).values(started_at=now() - timedelta(minutes=50)))
    store(session_factory, first, [report(0, 0), report(0, 1)])  # 2 of 12 in 50 min: 250 min left
    assert waits(session_factory)[second] == f"queued behind sweep {first}, about 4 h 10 min left"


def test_a_page_of_the_queue_counts_the_sweeps_ahead_of_it(session_factory: sessionmaker[Session]) -> None:
    ids = [make_sweep(session_factory) for _ in range(5)]
    with session_scope(session_factory) as session:
        page = list(session.query(Sweep).where(Sweep.id.in_(ids[3:])).order_by(Sweep.id.desc()))
        assert queue_waits(session, page) == {ids[3]: f"queued behind sweep {ids[0]} and 2 more",
                                              ids[4]: f"queued behind sweep {ids[0]} and 3 more"}
