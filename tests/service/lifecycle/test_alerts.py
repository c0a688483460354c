"""A schedule's finished sweeps compared with their baselines on SQLite and PostgreSQL: alerts
raised, confirmed by `consecutive`, resolved by a sweep back to normal, each event queued once in
the outbox, and every sweep compared exactly once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.comparison import Thresholds
from service.db.models import Alert, Schedule, Sweep, SweepComparison, Webhook, WebhookDelivery
from service.db.session import session_scope
from service.lifecycle.alerts import due_for_evaluation, evaluate
from service.lifecycle.schedules import create_schedule, fire
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.spec import parse_spec
from service.states import AlertState, SweepStatus, WebhookEvent
from tests.factories import report, store

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
LIMITS = Limits(max_runs=100_000)
SEEDS = 16
# cells: 0 = (0.1, none), 1 = (0.1, norm)
SPEC = {"task": {"name": "adding", "params": {"seq_len": 20}}, "learning_rates": [0.1],
        "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}], "seeds": SEEDS,
        "budget": {"max_steps": 10}}
URL = "http://192.0.2.1/hook"  # never sent to here: these tests read the outbox


def schedule(factory: sessionmaker[Session], **thresholds: object) -> int:
    with session_scope(factory) as session:
        made = create_schedule(session, name="nightly", cron=Cron.parse("0 2 * * *"), spec=parse_spec(SPEC),
                               limits=LIMITS, at=START, thresholds=Thresholds(**thresholds))  # type: ignore[arg-type]
        session.add(Webhook(schedule_id=made.id, url=URL, events=[e.value for e in WebhookEvent], secret="whsec_x",
                            enabled=True, created_at=START))
        return made.id


def night(factory: sessionmaker[Session], schedule_id: int, day: int, diverged: set[int] = frozenset(),
          *, torch: str = "2.13.0", status: SweepStatus = SweepStatus.SUCCEEDED, cells: tuple[int, ...] = (0,)) -> int:
    """A sweep of the schedule for day `day`, trained: the `diverged` seeds of `cells` diverge."""
    moment = START + timedelta(days=day)
    with session_scope(factory) as session:
        made = fire(session, session.get_one(Schedule, schedule_id), moment, moment, limits=LIMITS,
                    heartbeat_timeout=60)
        sweep_id = made.sweep_id
    assert sweep_id is not None
    store(factory, sweep_id, [report(cell, seed, "diverged" if cell in cells and seed in diverged else "unconverged")
                              for cell in (0, 1) for seed in range(SEEDS)])
    with session_scope(factory) as session:
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(
            status=status, environment={"torch": torch, "clipsweep": "0.1.0"}))
    return sweep_id


def compare_due(factory: sessionmaker[Session], day: int) -> list[SweepComparison]:
    done = []
    for sweep_id in due_for_evaluation_now(factory):
        with session_scope(factory) as session:
            row = evaluate(session, session.get_one(Sweep, sweep_id), START + timedelta(days=day, hours=1),
                           server_url="http://clipsweep.example")
            session.flush()
            session.expunge(row)
            done.append(row)
    return done


def due_for_evaluation_now(factory: sessionmaker[Session]) -> list[int]:
    with session_scope(factory) as session:
        return due_for_evaluation(session)


def alerts(factory: sessionmaker[Session]) -> list[Alert]:
    with session_scope(factory) as session:
        found = list(session.scalars(select(Alert).order_by(Alert.id)))
        session.expunge_all()
        return found


def events(factory: sessionmaker[Session]) -> list[tuple[str, dict]]:
    with session_scope(factory) as session:
        return [(d.event, json.loads(d.body)) for d in session.scalars(select(WebhookDelivery)
                                                                       .order_by(WebhookDelivery.id))]


BAD = set(range(8))  # 8 of 16 seeds flip to diverging: one-sided McNemar p = 1/256


def test_a_regression_alerts_once_with_its_evidence_and_resolves_when_back(
        session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory)
    first = night(session_factory, schedule_id, 1)
    [row] = compare_due(session_factory, 1)
    assert row.baseline_sweep_id is None and "no earlier succeeded sweep" in (row.detail or "")
    assert [e for e, _ in events(session_factory)] == ["sweep.finished"]

    second = night(session_factory, schedule_id, 2, BAD, torch="2.14.0")
    [row] = compare_due(session_factory, 2)
    assert row.baseline_sweep_id == first and len(row.result["alerts_raised"]) == 1
    [alert] = alerts(session_factory)
    assert (alert.state, alert.kind.value, alert.sweep_id, alert.baseline_sweep_id) == (
        AlertState.OPEN, "divergence", second, first)
    assert alert.evidence["flipped_seeds"] == sorted(BAD) and alert.evidence["test"] == "mcnemar"
    assert alert.evidence["current"]["diverged"] == 8 and alert.evidence["baseline"]["diverged"] == 0
    assert alert.evidence["p_worse"] == pytest.approx(1 / 256)
    assert alert.environment_change == ["torch 2.13.0 → 2.14.0"]
    # q: p = 1/256 adjusted over the two cells compared (BH), 2/256.
    assert alert.text == "divergence at lr 0.1, none: 0/16 → 8/16 (q = 0.0078); torch 2.13.0 → 2.14.0"
    kinds = [e for e, _ in events(session_factory)]
    assert kinds == ["sweep.finished", "sweep.finished", "regression.detected"]
    detected = events(session_factory)[2][1]
    assert detected["type"] == "regression.detected" and detected["text"] == alert.text
    assert detected["data"]["alert"]["evidence"]["flipped_seeds"] == sorted(BAD)
    assert detected["data"]["links"] == {"sweep": f"http://clipsweep.example/sweeps/{second}",
                                         "baseline": f"http://clipsweep.example/sweeps/{first}",
                                         "dashboard": f"http://clipsweep.example/schedules/{schedule_id}"}

    # Still bad the next night: no second alert (against the bad night nothing changed, and
    # against its own baseline the open alert still holds).
    night(session_factory, schedule_id, 3, BAD, torch="2.14.0")
    compare_due(session_factory, 3)
    [alert] = alerts(session_factory)
    assert alert.state is AlertState.OPEN and alert.streak == 2

    fixed = night(session_factory, schedule_id, 4, torch="2.14.1")
    compare_due(session_factory, 4)
    [alert] = alerts(session_factory)
    assert alert.state is AlertState.RESOLVED and alert.resolved_by_sweep_id == fixed
    assert [e for e, _ in events(session_factory)][-2:] == ["sweep.finished", "regression.resolved"]
    assert events(session_factory)[-1][1]["data"]["alert"]["state"] == "resolved"


def test_several_cells_getting_worse_at_once_are_one_message(session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory)
    night(session_factory, schedule_id, 1)
    bad = night(session_factory, schedule_id, 2, BAD, torch="2.14.0", cells=(0, 1))
    compare_due(session_factory, 2)
    assert sorted(a.kind.value for a in alerts(session_factory)) == ["divergence", "divergence", "protection"]
    [detected] = [body for event, body in events(session_factory) if event == "regression.detected"]
    assert len(detected["data"]["alerts"]) == 3 and detected["data"]["alert"] == detected["data"]["alerts"][0]
    assert detected["text"] == (
        f"3 regressions in nightly (sweep {bad}): divergence at lr 0.1, none: 0/16 → 8/16 (q = 0.0039); "
        "divergence at lr 0.1, norm(max_norm=1.0): 0/16 → 8/16 (q = 0.0039); clipping stopped protecting at "
        "lr 0.1, norm(max_norm=1.0): 0/16 diverged before, 8/16 now; torch 2.13.0 → 2.14.0")
    night(session_factory, schedule_id, 3, torch="2.14.1")
    compare_due(session_factory, 3)
    [resolved] = [body for event, body in events(session_factory) if event == "regression.resolved"]
    assert len(resolved["data"]["alerts"]) == 3 and resolved["text"].count("resolved: ") == 3


def test_consecutive_waits_for_the_second_bad_night_against_the_first_baseline(
        session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory, consecutive=2)
    first = night(session_factory, schedule_id, 1)
    night(session_factory, schedule_id, 2, BAD)
    compare_due(session_factory, 2)
    [alert] = alerts(session_factory)
    assert alert.state is AlertState.PENDING and alert.opened_at is None
    assert "regression.detected" not in [e for e, _ in events(session_factory)]
    night(session_factory, schedule_id, 3, BAD)
    compare_due(session_factory, 3)
    [alert] = alerts(session_factory)
    assert alert.state is AlertState.OPEN and alert.streak == 2 and alert.baseline_sweep_id == first
    assert [e for e, _ in events(session_factory)].count("regression.detected") == 1


def test_a_pending_regression_not_seen_again_resolves_without_a_word(session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory, consecutive=2)
    night(session_factory, schedule_id, 1)
    night(session_factory, schedule_id, 2, BAD)
    night(session_factory, schedule_id, 3)
    compare_due(session_factory, 3)
    [alert] = alerts(session_factory)
    assert alert.state is AlertState.RESOLVED and "not seen again" in (alert.resolution or "")
    assert [e for e, _ in events(session_factory)] == ["sweep.finished"] * 3


def test_an_improvement_is_noted_and_only_sent_to_who_asked(session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory)
    night(session_factory, schedule_id, 1, BAD)
    night(session_factory, schedule_id, 2)
    compare_due(session_factory, 2)
    [alert] = alerts(session_factory)
    assert (alert.kind.value, alert.state, alert.measure) == ("improvement", AlertState.NOTED, "divergence")
    assert "improvement.detected" in [e for e, _ in events(session_factory)]  # this webhook asked for every event


def test_a_failed_sweep_is_announced_not_compared_and_each_sweep_is_compared_once(
        session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory)
    night(session_factory, schedule_id, 1)
    broken = night(session_factory, schedule_id, 2, BAD, status=SweepStatus.FAILED)
    rows = compare_due(session_factory, 2)
    assert [r.detail for r in rows][-1] == "the sweep failed: only a succeeded sweep is compared"
    assert [e for e, _ in events(session_factory)] == ["sweep.finished", "sweep.failed"]
    assert not alerts(session_factory) and due_for_evaluation_now(session_factory) == []
    with pytest.raises(IntegrityError), session_scope(session_factory) as session:  # a second evaluator
        evaluate(session, session.get_one(Sweep, broken), START, server_url="http://x")


def test_a_pinned_baseline_is_what_every_sweep_is_compared_with(session_factory: sessionmaker[Session]) -> None:
    schedule_id = schedule(session_factory)
    pinned = night(session_factory, schedule_id, 1)
    night(session_factory, schedule_id, 2)
    with session_scope(session_factory) as session:
        session.get_one(Schedule, schedule_id).baseline_sweep_id = pinned
    night(session_factory, schedule_id, 3)
    rows = compare_due(session_factory, 3)
    assert [r.baseline_sweep_id for r in rows] == [None, pinned, pinned]
