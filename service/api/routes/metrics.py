"""/metrics in the Prometheus text format (prometheus_client), read from the database at each
scrape, so every API process reports the same numbers and none keeps counters of its own."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from service import __version__
from service.api.auth import READ
from service.api.deps import SessionDep
from service.clock import now
from service.queries.operations import Operations, operations

router = APIRouter(tags=["meta"], dependencies=[Depends(READ)])


class _Snapshot:
    """A prometheus_client collector over one reading of the database."""

    def __init__(self, state: Operations) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state, moment = self.state, now()
        info = GaugeMetricFamily("clipsweep_info", "The clipsweep version serving this.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        sweeps = GaugeMetricFamily("clipsweep_sweeps", "Sweeps by status.", labels=["status"])
        for status, n in state.sweeps.items():
            sweeps.add_metric([status.value], n)
        yield sweeps
        runs = GaugeMetricFamily("clipsweep_runs", "Runs by outcome (pending: none yet).", labels=["outcome"])
        for outcome, n in state.runs.items():
            runs.add_metric([outcome.value if outcome else "pending"], n)
        yield runs
        waited = (moment - state.oldest_queued_at).total_seconds() if state.oldest_queued_at else 0.0
        yield GaugeMetricFamily("clipsweep_oldest_queued_sweep_age_seconds",
                                "How long the oldest queued sweep has waited (0 with none queued).", value=waited)
        heartbeat = GaugeMetricFamily(
            "clipsweep_worker_heartbeat_age_seconds",
            "Per running sweep, seconds since its worker's last heartbeat (since it started, before the first).",
            labels=["sweep_id", "worker"])
        for sweep in state.running:
            last = sweep.heartbeat_at or sweep.started_at
            heartbeat.add_metric([str(sweep.sweep_id), sweep.worker_id or ""],
                                 (moment - last).total_seconds() if last else 0.0)
        yield heartbeat
        late = GaugeMetricFamily("clipsweep_schedule_lateness_seconds",
                                 "Per schedule, from its last fire time to the creation of the sweep made for it.",
                                 labels=["schedule_id", "schedule"])
        fires = GaugeMetricFamily("clipsweep_schedule_fires", "Per schedule, its fire times by outcome.",
                                  labels=["schedule_id", "schedule", "outcome"])
        for schedule in state.schedules:
            labels = [str(schedule.schedule_id), schedule.name]
            if schedule.lateness_seconds is not None:
                late.add_metric(labels, schedule.lateness_seconds)
            for outcome, n in schedule.fires.items():
                fires.add_metric([*labels, outcome.value], n)
        yield late
        yield fires
        alerts = GaugeMetricFamily("clipsweep_alerts", "Regression alerts (and noted improvements) by state.",
                                   labels=["state"])
        for alert_state, n in state.alerts.items():
            alerts.add_metric([alert_state.value], n)
        yield alerts
        deliveries = GaugeMetricFamily("clipsweep_webhook_deliveries", "Webhook deliveries by state.",
                                       labels=["state"])
        for delivery_state, n in state.deliveries.items():
            deliveries.add_metric([delivery_state.value], n)
        yield deliveries
        oldest = state.oldest_pending_delivery_at
        yield GaugeMetricFamily("clipsweep_oldest_pending_webhook_delivery_age_seconds",
                                "How long the oldest undelivered webhook event has waited (0 with none).",
                                value=(moment - oldest).total_seconds() if oldest else 0.0)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "The Prometheus text format."}})
def metrics(session: SessionDep) -> Response:
    """Sweeps by status, runs by outcome, the oldest queued sweep's wait, each running sweep's
    heartbeat age, each schedule's lateness and fires by outcome (missed, skipped...), alerts and
    webhook deliveries by state, the oldest undelivered event's age. Scrape it
    with a `read` token (`authorization` in the scrape config)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(operations(session)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
