"""A scheduled sweep, once finished, against its baseline: the comparison stored once, the alerts
it raises or resolves, and the events that go to the schedule's webhooks, in one transaction.

Each alert keeps the baseline it was found against. A regression shows once against the previous
sweep (the next night's previous sweep is already the worse one), so whether it still holds, for
`consecutive` and for resolving, is tested against the alert's own baseline: an alert resolves
itself when a later sweep is back within the thresholds of that baseline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.analysis.comparison import Comparison, Finding, Thresholds, environment_change
from service.db.models import Alert, Schedule, Sweep, SweepComparison
from service.lifecycle.outbox import enqueue
from service.queries.comparisons import compare_sweeps
from service.queries.sweeps import outcome_counts
from service.states import AlertKind, AlertState, SweepStatus, WebhookEvent

FINISHED = [SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED]


def thresholds_of(schedule: Schedule) -> Thresholds:
    return Thresholds(**(schedule.thresholds or {}))


def due_for_evaluation(session: Session, limit: int = 10, exclude: list[int] | None = None) -> list[int]:
    """Finished scheduled sweeps not compared yet, oldest first, but for `exclude`."""
    return list(session.scalars(
        select(Sweep.id).outerjoin(SweepComparison, SweepComparison.sweep_id == Sweep.id)
        .where(Sweep.schedule_id.is_not(None), Sweep.status.in_(FINISHED), SweepComparison.sweep_id.is_(None),
               Sweep.id.not_in(exclude or []))
        .order_by(Sweep.id).limit(limit)))


def baseline_of(session: Session, schedule: Schedule, sweep: Sweep) -> Sweep | None:
    """The pinned baseline, or the schedule's latest succeeded sweep before this one."""
    if schedule.baseline_sweep_id is not None:
        pinned = session.get(Sweep, schedule.baseline_sweep_id)
        return pinned if pinned is not None and pinned.id != sweep.id else None
    return session.scalars(select(Sweep).where(Sweep.schedule_id == schedule.id, Sweep.id < sweep.id,
                                               Sweep.status == SweepStatus.SUCCEEDED)
                           .order_by(Sweep.id.desc()).limit(1)).first()


class _Links:
    def __init__(self, server_url: str, schedule_id: int) -> None:
        self.base, self.schedule_id = server_url.rstrip("/"), schedule_id

    def sweep(self, sweep_id: int | None) -> str | None:
        return None if sweep_id is None else f"{self.base}/sweeps/{sweep_id}"

    @property
    def dashboard(self) -> str:
        return f"{self.base}/schedules/{self.schedule_id}"


def evaluate(session: Session, sweep: Sweep, at: datetime, *, server_url: str) -> SweepComparison:
    """Compare a finished scheduled sweep with its baseline, once (a second evaluator's insert
    fails on the primary key), raise and resolve the schedule's alerts, and queue the events: one
    message for what this sweep opened, one for what it resolved, however many cells. The caller
    commits."""
    schedule = session.get_one(Schedule, sweep.schedule_id)
    row = SweepComparison(sweep_id=sweep.id, schedule_id=schedule.id, created_at=at)
    session.add(row)
    session.flush()
    links = _Links(server_url, schedule.id)
    _sweep_event(session, schedule, sweep, links, at)
    if sweep.status is not SweepStatus.SUCCEEDED:
        row.detail = f"the sweep {sweep.status.value}: only a succeeded sweep is compared"
        return row
    thresholds = thresholds_of(schedule)
    baseline = baseline_of(session, schedule, sweep)
    comparisons: dict[int, Comparison] = {}
    if baseline is None:
        row.detail = "no earlier succeeded sweep of this schedule to compare with"
    else:
        comparisons[baseline.id] = compare_sweeps(session, sweep.id, baseline.id, thresholds)
    opened, resolved = _retest(session, schedule, sweep, thresholds, comparisons, at)
    made: list[Alert] = []
    if baseline is not None:
        found = comparisons[baseline.id]
        change = environment_change(baseline.environment, sweep.environment)
        back = {alert.subject for alert in resolved}  # its improvement is this resolution: said once
        made = _raise(session, schedule, sweep, baseline, found, change, back, at)
        opened += [a for a in made if a.state is AlertState.PENDING and thresholds.consecutive <= 1]
        row.baseline_sweep_id = baseline.id
        row.result = {
            "regressions": [_finding_json(f) for f in found.regressions],
            "improvements": [_finding_json(f) for f in found.improvements],
            "cells_compared": len(found.divergence),
            "only_current": [c.cell_index for c in found.only_current],
            "only_baseline": [c.cell_index for c in found.only_baseline],
            "environment_change": change, "alerts_raised": [a.id for a in made],
            "alerts_resolved": [a.id for a in resolved]}
    for alert in opened:
        alert.state, alert.opened_at = AlertState.OPEN, at
    noted = [a for a in made if a.kind is AlertKind.IMPROVEMENT]
    said = [a for a in resolved if a.opened_at is not None]  # a pending one resolves without a word
    for event, alerts in ((WebhookEvent.REGRESSION_DETECTED, opened), (WebhookEvent.REGRESSION_RESOLVED, said),
                          (WebhookEvent.IMPROVEMENT_DETECTED, noted)):
        if alerts:
            _announce(session, schedule, sweep, event, alerts, links, at)
    return row


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {"kind": finding.kind, "measure": finding.measure, "lr": finding.lr, "clipping": finding.clipping,
            "text": finding.text}


def _retest(session: Session, schedule: Schedule, sweep: Sweep, thresholds: Thresholds,
            comparisons: dict[int, Comparison], at: datetime) -> tuple[list[Alert], list[Alert]]:
    """Each active alert of the schedule against this sweep and the alert's own baseline: still
    there, or resolved. The pending ones now seen `consecutive` times in a row, to open, and the
    resolved ones."""
    opened, resolved = [], []
    active = session.scalars(select(Alert).where(Alert.schedule_id == schedule.id, Alert.state.in_(
        [AlertState.PENDING, AlertState.OPEN, AlertState.ACKNOWLEDGED])).order_by(Alert.id)).all()
    for alert in active:
        if session.get(Sweep, alert.baseline_sweep_id) is None:
            continue  # its baseline was deleted: nothing to test against
        if alert.baseline_sweep_id not in comparisons:
            comparisons[alert.baseline_sweep_id] = compare_sweeps(session, sweep.id, alert.baseline_sweep_id,
                                                                  thresholds)
        comparison = comparisons[alert.baseline_sweep_id]
        if not _covers(comparison, alert):
            continue  # the cell or arm is not in this sweep: no evidence either way
        still = next((f for f in comparison.regressions if (f.kind, f.subject) == (alert.kind.value, alert.subject)),
                     None)
        if still is not None:
            alert.streak += 1
            alert.evidence = {**still.evidence, "latest_sweep_id": sweep.id}
            if alert.state is AlertState.PENDING and alert.streak >= thresholds.consecutive:
                opened.append(alert)
            continue
        alert.state, alert.resolved_at, alert.resolved_by_sweep_id = AlertState.RESOLVED, at, sweep.id
        alert.resolution = (f"sweep {sweep.id} is back within the thresholds against baseline sweep "
                            f"{alert.baseline_sweep_id}" if alert.opened_at is not None else
                            f"not seen again in sweep {sweep.id} ({thresholds.consecutive} in a row needed)")
        resolved.append(alert)
    return opened, resolved


def _covers(comparison: Comparison, alert: Alert) -> bool:
    if alert.kind is AlertKind.FRONTIER:
        return any(f.clipping == alert.subject for f in comparison.frontier)
    return any(c.config_hash == alert.subject for c in comparison.divergence)


def _raise(session: Session, schedule: Schedule, sweep: Sweep, baseline: Sweep, found: Comparison, change: list[str],
           back: set[str], at: datetime) -> list[Alert]:
    """A new alert for each finding no active alert tracks: pending (the caller opens it, or
    `consecutive` waits), or noted for an improvement."""
    active = {(kind, subject) for kind, subject in session.execute(
        select(Alert.kind, Alert.subject).where(Alert.schedule_id == schedule.id, Alert.state.in_(
            [AlertState.PENDING, AlertState.OPEN, AlertState.ACKNOWLEDGED])))}
    made = []
    for finding in found.regressions + found.improvements:
        kind = AlertKind(finding.kind)
        improvement = kind is AlertKind.IMPROVEMENT
        if (kind, finding.subject) in active or (improvement and finding.subject in back):
            continue  # already tracked against its own baseline, or just resolved
        alert = Alert(schedule_id=schedule.id, sweep_id=sweep.id, baseline_sweep_id=baseline.id, kind=kind,
                      measure=finding.measure, subject=finding.subject, lr=finding.lr, clipping=finding.clipping,
                      state=AlertState.NOTED if improvement else AlertState.PENDING, streak=1,
                      evidence=finding.evidence, environment_change=change,
                      text="; ".join([finding.text, *change]), created_at=at)
        session.add(alert)
        made.append(alert)
    session.flush()
    return made


def _announce(session: Session, schedule: Schedule, sweep: Sweep, event: WebhookEvent, alerts: list[Alert],
              links: _Links, at: datetime) -> None:
    """One message for the alerts a sweep opened (or resolved, or noted): `alert` the first,
    `alerts` all of them, and `text` a sentence a chat shows as it is."""
    first = alerts[0]
    if event is WebhookEvent.REGRESSION_RESOLVED:
        said = "; ".join(f"resolved: {_finding_text(a)}" for a in alerts)
        text = f"{said} (sweep {sweep.id} is back within the thresholds)"
    elif len(alerts) == 1:
        text = first.text
    else:
        what = "regressions" if event is WebhookEvent.REGRESSION_DETECTED else "improvements"
        text = (f"{len(alerts)} {what} in {schedule.name} (sweep {sweep.id}): "
                + "; ".join([*(_finding_text(a) for a in alerts), *first.environment_change]))
    enqueue(session, schedule.id, event, {"text": text, "data": {
        "alert": alert_json(first), "alerts": [alert_json(a) for a in alerts],
        **_context(schedule, sweep.id, first.baseline_sweep_id, links)}}, at)


def _finding_text(alert: Alert) -> str:
    """The alert's sentence without the environment change appended to it."""
    suffix = "".join(f"; {change}" for change in alert.environment_change)
    return alert.text[: len(alert.text) - len(suffix)] if suffix and alert.text.endswith(suffix) else alert.text


def _context(schedule: Schedule, sweep_id: int, baseline_id: int | None, links: _Links) -> dict[str, Any]:
    return {"schedule": {"id": schedule.id, "name": schedule.name},
            "sweep_id": sweep_id, "baseline_sweep_id": baseline_id,
            "links": {"sweep": links.sweep(sweep_id), "baseline": links.sweep(baseline_id),
                      "dashboard": links.dashboard}}


def _sweep_event(session: Session, schedule: Schedule, sweep: Sweep, links: _Links, at: datetime) -> None:
    counts = outcome_counts(session, [sweep.id])[sweep.id]
    event = WebhookEvent.SWEEP_FAILED if sweep.status is SweepStatus.FAILED else WebhookEvent.SWEEP_FINISHED
    trained = counts["converged"] + counts["diverged"] + counts["unconverged"]
    said = (f"sweep {sweep.id} of {schedule.name} {sweep.status.value}: "
            f"{counts['diverged']} of {trained} trained runs diverged")
    if sweep.error:
        said += f" ({sweep.error[:200]})"
    enqueue(session, schedule.id, event, {"text": said, "data": {
        "sweep": {"id": sweep.id, "name": sweep.name, "status": sweep.status.value, "error": sweep.error,
                  "runs_total": sweep.runs_total, "by_outcome": counts, "environment": sweep.environment,
                  "scheduled_for": sweep.scheduled_for.isoformat() if sweep.scheduled_for else None},
        **_context(schedule, sweep.id, None, links)}}, at)


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as the API answers it and a webhook carries it."""
    return {"id": alert.id, "schedule_id": alert.schedule_id, "sweep_id": alert.sweep_id,
            "baseline_sweep_id": alert.baseline_sweep_id, "kind": alert.kind.value, "measure": alert.measure,
            "subject": alert.subject, "lr": alert.lr, "clipping": alert.clipping, "state": alert.state.value,
            "streak": alert.streak, "evidence": alert.evidence, "environment_change": alert.environment_change,
            "text": alert.text, "created_at": _iso(alert.created_at), "opened_at": _iso(alert.opened_at),
            "acknowledged_at": _iso(alert.acknowledged_at), "acknowledged_by": alert.acknowledged_by,
            "resolved_at": _iso(alert.resolved_at), "resolved_by_sweep_id": alert.resolved_by_sweep_id,
            "resolution": alert.resolution}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def acknowledge(alert: Alert, by: str | None, at: datetime) -> Alert:
    """An open alert someone is on: it stays until a sweep resolves it, and is no longer listed as open."""
    if alert.state is AlertState.OPEN:
        alert.state, alert.acknowledged_at, alert.acknowledged_by = AlertState.ACKNOWLEDGED, at, by
    return alert


def fire_missed(session: Session, schedule: Schedule, scheduled_for: datetime, outcome: str, detail: str | None,
                at: datetime, server_url: str) -> None:
    """Queue schedule.fire_missed for a fire time that made no sweep."""
    links = _Links(server_url, schedule.id)
    enqueue(session, schedule.id, WebhookEvent.FIRE_MISSED, {
        "text": f"{schedule.name}: the fire time {scheduled_for:%Y-%m-%d %H:%M}Z made no sweep ({outcome}"
                + (f": {detail}" if detail else "") + ")",
        "data": {"schedule": {"id": schedule.id, "name": schedule.name}, "scheduled_for": scheduled_for.isoformat(),
                 "outcome": outcome, "detail": detail, "links": {"dashboard": links.dashboard}}}, at)
