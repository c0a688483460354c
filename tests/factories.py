"""Plain factory functions the tests share: a stored sweep, and the reports its trials would send."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Run
from service.db.session import session_scope
from service.lifecycle.report import RunReport, parse_report
from service.lifecycle.runs import store_results
from service.lifecycle.submit import Limits, create_sweep
from service.spec import parse_spec

# cells: 0 = (0.1, none), 1 = (0.1, norm), 2 = (0.5, none), 3 = (0.5, norm); seeds 0-2
SPEC: dict[str, Any] = {
    "name": "store-test",
    "task": {"name": "adding", "params": {"seq_len": 20}},
    "learning_rates": [0.1, 0.5],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 3,
    "budget": {"max_steps": 10},
}


def make_sweep(factory: sessionmaker[Session], spec: dict[str, Any] = SPEC) -> int:
    """A sweep submitted as the API would store it: queued, every run pending."""
    with session_scope(factory) as session:
        return create_sweep(session, parse_spec(spec), limits=Limits(max_runs=100_000)).id


def trained_run(outcome: str = "unconverged", **fields: Any) -> dict[str, Any]:
    """A whole RunResult payload as trainers.ray_adapter.result_payload makes it; `fields` override."""
    return {"outcome": outcome, "steps_done": 10, "trigger": None, "diverged_at_step": None,
            "converged_at_step": None, "initial_loss": 0.3, "final_loss": 0.2, "min_loss": 0.1,
            "final_eval_loss": 0.2, "clipped_steps": 0, "max_grad_norm": 2.0, "norm_histogram": {},
            "divergence_grad_norm": None, "points": [[0, 0.3, 2.0, False], [9, 0.2, 1.0, True]], **fields}


def report(cell: int, seed: int, outcome: str = "unconverged", **fields: Any) -> RunReport:
    """One seed's report, checked as the service checks what a trial sends."""
    return parse_report({"cell_index": cell, "seed": seed, "device": "cpu", "node": "test",
                         "run": trained_run(outcome, **fields)})


def store(factory: sessionmaker[Session], sweep_id: int, reports: list[RunReport]) -> int:
    with session_scope(factory) as session:
        return store_results(session, sweep_id, reports)


def hand_made_sweep(factory: sessionmaker[Session]) -> int:
    """A sweep (SPEC) with hand-made results: cell 2 diverges three ways (loss explosion, NaN
    gradient, NaN loss), cell 1 converges, cell 3 is one third done and carries norm histograms,
    cell 0's runs have none (as if stored before norms were binned)."""
    sweep_id = make_sweep(factory)
    store(factory, sweep_id, [
        report(0, 0), report(0, 1), report(0, 2),
        report(1, 0, outcome="converged", converged_at_step=4, steps_done=4, norm_histogram={0: 4}),
        report(1, 1, outcome="converged", converged_at_step=8, steps_done=8, norm_histogram={0: 8}),
        report(1, 2, norm_histogram={0: 10}),
        report(2, 0, outcome="diverged", trigger="loss_explosion", diverged_at_step=5, steps_done=5,
               divergence_grad_norm=40.0, max_grad_norm=40.0, clipped_steps=0, norm_histogram={20: 3, 32: 2},
               final_loss=1e9, points=[[0, 0.3, 2.0, False], [5, 1e9, None, False]]),
        report(2, 1, outcome="diverged", trigger="nonfinite_grad", diverged_at_step=2, steps_done=2,
               divergence_grad_norm=math.nan, max_grad_norm=math.nan, norm_histogram={20: 2},
               points=[[0, 0.3, 2.0, False], [2, 5.0, math.nan, False]]),
        report(2, 2, outcome="diverged", trigger="nonfinite_loss", diverged_at_step=3, steps_done=3,
               divergence_grad_norm=7.0, max_grad_norm=7.0, final_loss=math.nan, norm_histogram={16: 3},
               points=[[0, 0.3, 2.0, False], [3, math.nan, None, False]]),
        report(3, 0, clipped_steps=6, norm_histogram={0: 4, 20: 6}, max_grad_norm=12.0),
    ])
    with session_scope(factory) as session:  # stored before norm telemetry existed (migration 0003)
        session.execute(update(Run).where(Run.sweep_id == sweep_id, Run.cell_index == 0).values(norm_histogram=None))
    return sweep_id


def scheduled_regression(factory: sessionmaker[Session]) -> dict[str, int]:
    """A schedule (SPEC) with a webhook and two succeeded sweeps, compared: in the second, the
    clipped cell at lr 0.1 diverges where it never did, an open `protection` alert with its
    deliveries in the outbox. The ids of each."""
    from datetime import datetime, timezone

    from service.db.models import Alert, Schedule, Sweep, Webhook, WebhookDelivery
    from service.lifecycle.alerts import evaluate
    from service.lifecycle.schedules import create_schedule, fire
    from service.scheduler.cron import Cron
    from service.states import SweepStatus

    at = datetime.now(timezone.utc)
    with session_scope(factory) as session:
        schedule = create_schedule(session, name=f"regressing {at:%H%M%S%f}", cron=Cron.parse("@daily"),
                                   spec=parse_spec(SPEC), limits=Limits(max_runs=1000), at=at)
        hook = Webhook(schedule_id=schedule.id, url="https://93.184.215.14/hook", secret="whsec_" + "A" * 44,
                       events=["regression.detected", "sweep.finished"], enabled=True, created_at=at)
        session.add(hook)
        session.flush()
        ids = {"schedule_id": schedule.id, "webhook_id": hook.id}
    sweeps = []
    for night, diverging in enumerate(((), (0, 1))):
        with session_scope(factory) as session:
            moment = datetime.now(timezone.utc)
            sweep_id = fire(session, session.get_one(Schedule, ids["schedule_id"]), moment, moment,
                            limits=Limits(max_runs=1000), heartbeat_timeout=60).sweep_id
        store(factory, sweep_id, [report(c, s, "diverged" if c == 1 and s in diverging else "unconverged")
                                  for c in range(4) for s in range(3)])
        with session_scope(factory) as session:
            sweep = session.get_one(Sweep, sweep_id)
            sweep.status = SweepStatus.SUCCEEDED
            session.flush()
            evaluate(session, sweep, datetime.now(timezone.utc), server_url="http://127.0.0.1:8000")
        sweeps.append(sweep_id)
    with session_scope(factory) as session:
        ids["alert_id"] = session.scalars(select(Alert.id).where(Alert.schedule_id == ids["schedule_id"])).one()
        ids["delivery_id"] = session.scalars(select(WebhookDelivery.id).where(
            WebhookDelivery.webhook_id == ids["webhook_id"])).first()
    return {**ids, "baseline_id": sweeps[0], "sweep_id": sweeps[1]}
