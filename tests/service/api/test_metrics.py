"""/metrics on SQLite and PostgreSQL: what the Prometheus text says matches the stored sweeps."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Sweep
from service.db.session import session_scope
from service.lifecycle.queue import claim_next_sweep
from service.lifecycle.schedules import create_schedule, fire_due
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.spec import parse_spec
from tests.factories import SPEC, make_sweep, report, scheduled_regression, store


def scrape(api: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = api.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_sweeps_runs_the_queue_and_heartbeats(api: TestClient,
                                                            session_factory: sessionmaker[Session]) -> None:
    running, queued, _ = (make_sweep(session_factory) for _ in range(3))  # 12 runs each
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "worker-a", heartbeat_timeout=60) == running
        session.execute(update(Sweep).where(Sweep.id == running).values(heartbeat_at=now() - timedelta(seconds=30)))
        session.execute(update(Sweep).where(Sweep.id == queued).values(created_at=now() - timedelta(minutes=10)))
    store(session_factory, running, [report(0, 0), report(2, 1, "diverged", trigger="loss_explosion")])
    metrics = scrape(api)
    assert metrics[("clipsweep_sweeps", (("status", "queued"),))] == 2
    assert metrics[("clipsweep_sweeps", (("status", "running"),))] == 1
    assert metrics[("clipsweep_sweeps", (("status", "succeeded"),))] == 0
    assert metrics[("clipsweep_runs", (("outcome", "pending"),))] == 34
    assert metrics[("clipsweep_runs", (("outcome", "diverged"),))] == 1
    assert metrics[("clipsweep_runs", (("outcome", "unconverged"),))] == 1
    assert 600 <= metrics[("clipsweep_oldest_queued_sweep_age_seconds", ())] < 660
    labels = (("sweep_id", str(running)), ("worker", "worker-a"))
    heartbeat = metrics[("clipsweep_worker_heartbeat_age_seconds", labels)]
    assert 30 <= heartbeat < 90


def test_metrics_give_each_schedules_lateness_and_fires_by_outcome(api: TestClient,
                                                                   session_factory: sessionmaker[Session]) -> None:
    due = now().replace(second=0, microsecond=0)
    with session_scope(session_factory) as session:
        schedule_id = create_schedule(session, name="nightly", cron=Cron.parse("* * * * *"), spec=parse_spec(SPEC),
                                      limits=Limits(max_runs=100), at=due - timedelta(minutes=1)).id
    with session_scope(session_factory) as session:  # fired 20 s late, then the next minute skipped
        fire_due(session, due + timedelta(seconds=20), limits=Limits(max_runs=100), heartbeat_timeout=60)
        session.execute(update(Sweep).values(created_at=due + timedelta(seconds=20)))
    with session_scope(session_factory) as session:
        fire_due(session, due + timedelta(minutes=1), limits=Limits(max_runs=100), heartbeat_timeout=60)
    metrics = scrape(api)
    labels = (("schedule", "nightly"), ("schedule_id", str(schedule_id)))
    assert metrics[("clipsweep_schedule_lateness_seconds", labels)] == 20.0
    assert metrics[("clipsweep_schedule_fires", (("outcome", "fired"), *labels))] == 1
    assert metrics[("clipsweep_schedule_fires", (("outcome", "skipped"), *labels))] == 1
    assert metrics[("clipsweep_schedule_fires", (("outcome", "missed"), *labels))] == 0


def test_metrics_count_alerts_and_webhook_deliveries_by_state(api: TestClient,
                                                              session_factory: sessionmaker[Session]) -> None:
    scheduled_regression(session_factory)  # one open alert; its webhook's two events undelivered
    metrics = scrape(api)
    assert metrics[("clipsweep_alerts", (("state", "open"),))] == 1
    assert metrics[("clipsweep_alerts", (("state", "resolved"),))] == 0
    assert metrics[("clipsweep_webhook_deliveries", (("state", "pending"),))] == 3  # 2 × sweep.finished, 1 detected
    assert metrics[("clipsweep_webhook_deliveries", (("state", "delivered"),))] == 0
    assert metrics[("clipsweep_oldest_pending_webhook_delivery_age_seconds", ())] >= 0
