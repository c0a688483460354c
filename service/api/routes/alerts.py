"""/api/v1/alerts: the regressions (and improvements) schedules' sweeps showed against their
baselines; and /api/v1/sweeps/{a}/compare/{b}, the same tests on any two sweeps."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import func, select

from service.analysis.comparison import environment_change
from service.api.alert_schemas import AlertOut, ComparisonOut, ThresholdsIn
from service.api.auth import READ, Writer, require_owner
from service.api.deps import Limit, Offset, SessionDep, SweepId
from service.api.schemas import Page
from service.clock import now
from service.db.models import Alert, Schedule
from service.errors import AlertNotFound, Conflict
from service.lifecycle.alerts import acknowledge
from service.queries.comparisons import compare_sweeps
from service.queries.sweeps import get_sweep, sweep_state
from service.spec import INT32_MAX
from service.states import AlertKind, AlertState

router = APIRouter(prefix="/api/v1", tags=["alerts"], dependencies=[Depends(READ)])
AlertId = Annotated[int, Path(ge=0, le=INT32_MAX, description="An alert's id.")]


def _alert(session: SessionDep, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    return alert


@router.get("/alerts", response_model=Page[AlertOut])
def list_alerts(*, session: SessionDep, schedule_id: Annotated[int | None, Query(ge=0, le=INT32_MAX)] = None,
                state: AlertState | None = None, kind: AlertKind | None = None, limit: Limit = 50,
                offset: Offset = 0) -> Page[AlertOut]:
    """Alerts, newest first, filtered by schedule, state and kind."""
    where = [c for c in (Alert.schedule_id == schedule_id if schedule_id is not None else None,
                         Alert.state == state if state is not None else None,
                         Alert.kind == kind if kind is not None else None) if c is not None]
    alerts = session.scalars(select(Alert).where(*where).order_by(Alert.id.desc()).limit(limit).offset(offset))
    total = session.scalar(select(func.count()).select_from(Alert).where(*where)) or 0
    return Page(items=[AlertOut.build(a) for a in alerts], total=total, limit=limit, offset=offset)


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def read_alert(*, alert_id: AlertId, session: SessionDep) -> AlertOut:
    return AlertOut.build(_alert(session, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut,
             responses={409: {"description": "The alert is not open (pending, resolved or an improvement)."}})
def acknowledge_alert(*, alert_id: AlertId, session: SessionDep, principal: Writer) -> AlertOut:
    """Someone is on it: the alert leaves the open list and still resolves itself when a later
    sweep is back within the thresholds. Acknowledging an acknowledged alert changes nothing."""
    alert = _alert(session, alert_id)
    schedule = session.get_one(Schedule, alert.schedule_id)
    require_owner(principal, schedule.created_by, f"alert {alert_id}'s schedule {schedule.id}", "acknowledge")
    if alert.state not in (AlertState.OPEN, AlertState.ACKNOWLEDGED):
        raise Conflict(f"alert {alert_id} is {alert.state.value}; only an open alert can be acknowledged")
    acknowledge(alert, principal.name, now())
    session.commit()
    return AlertOut.build(alert)


@router.get("/sweeps/{sweep_id}/compare/{baseline_id}", response_model=ComparisonOut, tags=["sweeps"])
def compare(*, sweep_id: SweepId, baseline_id: Annotated[int, Path(ge=0, le=INT32_MAX, description=(
                "The baseline sweep's id."))], session: SessionDep, request: Request,
            alpha: Annotated[float, Query(gt=0, lt=1, allow_inf_nan=False)] = 0.05,
            min_effect: Annotated[float, Query(gt=0, le=1, allow_inf_nan=False)] = 0.10,
            min_slowdown: Annotated[float, Query(ge=1, le=1000, allow_inf_nan=False)] = 1.2,
            tolerance: Annotated[float, Query(ge=1e-6, lt=1, allow_inf_nan=False)] = 0.05) -> Response:
    """Sweep `sweep_id` against `baseline_id` with the tests the alerts use: cells matched by
    configuration hash; per cell the one-sided exact test of divergence (McNemar on the same seeds,
    Boschloo on different ones) with Benjamini–Hochberg q over the cells, the median steps to
    target with a bootstrap interval of the ratio; per arm the stability frontier; and what the
    thresholds call a regression or an improvement."""
    sweep, baseline = get_sweep(session, sweep_id), get_sweep(session, baseline_id)
    thresholds = ThresholdsIn(alpha=alpha, min_effect=min_effect, min_slowdown=min_slowdown, tolerance=tolerance)
    # Kept like a summary: the same two sweeps in the same states give the same answer.
    key = ("compare", sweep_id, sweep_state(session, sweep_id), baseline_id, sweep_state(session, baseline_id),
           alpha, min_effect, min_slowdown, tolerance)
    answers = request.app.state.answers
    body = answers.get(key)
    if body is None:
        found = compare_sweeps(session, sweep_id, baseline_id, thresholds.thresholds())
        body = ComparisonOut.build(sweep_id, baseline_id, thresholds, found,
                                   environment_change(baseline.environment, sweep.environment)
                                   ).model_dump_json().encode()
        answers.put(key, body)
    return Response(body, media_type="application/json")
