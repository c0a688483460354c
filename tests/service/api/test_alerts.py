"""Alerts, comparisons and webhooks through the API in this process: the secret shown once, SSRF
refused at creation, thresholds stored with the schedule, two sweeps compared with the alerts'
tests, an alert listed, read and acknowledged, and the schedule's history carrying each sweep's
comparison."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Sweep
from service.db.session import session_scope
from service.lifecycle.alerts import due_for_evaluation, evaluate
from service.states import SweepStatus
from tests.factories import report, store

SWEEP = {"task": {"name": "adding", "params": {"seq_len": 20}}, "learning_rates": [0.1],
         "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}], "seeds": 16,
         "budget": {"max_steps": 10}}


def make_schedule(api: TestClient, **more: object) -> dict:
    created = api.post("/api/v1/schedules", json={"name": "nightly", "cron": "0 2 * * *", "sweep": SWEEP, **more})
    assert created.status_code == 201, created.text
    return created.json()


def trained(api: TestClient, factory: sessionmaker[Session], schedule_id: int, diverged: set[int]) -> int:
    """A manual fire of the schedule, its runs stored (cell 0's `diverged` seeds diverge), succeeded."""
    fired = api.post(f"/api/v1/schedules/{schedule_id}/trigger")
    assert fired.status_code == 201, fired.text
    sweep_id = fired.json()["sweep_id"]
    store(factory, sweep_id, [report(c, s, "diverged" if c == 0 and s in diverged else "unconverged")
                              for c in (0, 1) for s in range(16)])
    with session_scope(factory) as session:
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=SweepStatus.SUCCEEDED))
    return sweep_id


def compare_finished(factory: sessionmaker[Session]) -> None:
    at = datetime.now(timezone.utc) + timedelta(seconds=1)
    with session_scope(factory) as session:
        for sweep_id in due_for_evaluation(session):
            evaluate(session, session.get_one(Sweep, sweep_id), at, server_url="http://127.0.0.1:8000")


def test_a_webhooks_secret_is_shown_once_and_never_again(api: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    schedule = make_schedule(api)
    caplog.set_level(logging.DEBUG)
    created = api.post(f"/api/v1/schedules/{schedule['id']}/webhooks",
                       json={"url": "https://hooks.invalid/clipsweep", "events": ["regression.detected"]})
    # .invalid never resolves (RFC 2606): a name must resolve, to a public address.
    assert created.status_code == 422 and "does not resolve" in created.text
    created = api.post(f"/api/v1/schedules/{schedule['id']}/webhooks",
                       json={"url": "https://93.184.215.14/clipsweep", "events": ["regression.detected",
                                                                                  "sweep.failed"]})
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) >= 6 + 32
    assert hook["events"] == ["regression.detected", "sweep.failed"] and hook["enabled"]
    assert hook["url"] == "https://93.184.215.14/clipsweep"  # whole, this once
    listed = api.get(f"/api/v1/schedules/{schedule['id']}/webhooks")
    assert listed.status_code == 200 and hook["secret"] not in listed.text and "secret" not in listed.json()[0]
    assert listed.json()[0]["url"] == "https://93.184.215.14/…weep"  # a chat URL is a credential too
    assert hook["secret"] not in caplog.text
    assert api.delete(f"/api/v1/schedules/{schedule['id']}/webhooks/{hook['id']}").status_code == 204
    assert api.get(f"/api/v1/schedules/{schedule['id']}/webhooks").json() == []


@pytest.mark.parametrize("url, says", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.1/hook", "private"),
    ("http://localhost:9/hook", "loopback"),
    ("ftp://93.184.215.14/", "http or https"),
    ("http://user:pw@93.184.215.14/", "user"),
])
def test_a_webhook_to_an_internal_address_is_refused_at_creation(api: TestClient, url: str, says: str) -> None:
    schedule = make_schedule(api)
    answer = api.post(f"/api/v1/schedules/{schedule['id']}/webhooks", json={"url": url})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "url"] and says in error["msg"], error


def test_unknown_events_are_refused_with_the_known_ones(api: TestClient) -> None:
    schedule = make_schedule(api)
    answer = api.post(f"/api/v1/schedules/{schedule['id']}/webhooks",
                      json={"url": "https://93.184.215.14/", "events": ["regression.detectd"]})
    assert answer.status_code == 422 and "regression.detected" in answer.text


def test_thresholds_and_a_pinned_baseline_are_stored_with_the_schedule(api: TestClient) -> None:
    schedule = make_schedule(api, thresholds={"alpha": 0.01, "consecutive": 2})
    assert schedule["thresholds"] == {"alpha": 0.01, "min_effect": 0.1, "min_slowdown": 1.2, "tolerance": 0.05,
                                      "consecutive": 2}
    assert schedule["baseline"] is None
    missing = api.patch(f"/api/v1/schedules/{schedule['id']}", json={"baseline": {"sweep_id": 999}})
    assert missing.status_code == 422 and "no sweep with id 999" in missing.text
    bad = api.patch(f"/api/v1/schedules/{schedule['id']}", json={"thresholds": {"alpha": 2}})
    assert bad.status_code == 422 and "alpha" in bad.text


def test_two_sweeps_compared_an_alert_acknowledged_and_the_history_says_so(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    schedule = make_schedule(api)
    sid = schedule["id"]
    good = trained(api, session_factory, sid, set())
    bad = trained(api, session_factory, sid, {0, 2, 4, 6, 8, 10, 12, 14})

    compared = api.get(f"/api/v1/sweeps/{bad}/compare/{good}")
    assert compared.status_code == 200, compared.text
    body = compared.json()
    cell0 = next(c for c in body["cells"] if c["clipping"] == "none")
    assert cell0["test"] == "mcnemar" and cell0["flipped_seeds"] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert (cell0["baseline"]["diverged"], cell0["current"]["diverged"]) == (0, 8)
    assert cell0["p_worse"] == pytest.approx(1 / 256) and cell0["q_worse"] == pytest.approx(2 / 256)
    assert [r["kind"] for r in body["regressions"]] == ["divergence"]
    assert body["only_current"] == [] and body["only_baseline"] == []
    # The other way round it is an improvement; stricter thresholds call it nothing.
    assert api.get(f"/api/v1/sweeps/{good}/compare/{bad}").json()["improvements"]
    assert not api.get(f"/api/v1/sweeps/{bad}/compare/{good}", params={"min_effect": 0.6}).json()["regressions"]
    assert api.get(f"/api/v1/sweeps/{bad}/compare/424242").status_code == 404

    compare_finished(session_factory)
    opened = api.get("/api/v1/alerts", params={"schedule_id": sid, "state": "open"}).json()
    assert opened["total"] == 1
    alert = opened["items"][0]
    assert alert["kind"] == "divergence" and alert["evidence"]["flipped_seeds"] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert api.get(f"/api/v1/alerts/{alert['id']}").json() == alert
    assert api.get("/api/v1/alerts", params={"kind": "slowdown"}).json()["total"] == 0
    acked = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge")
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    assert api.get("/api/v1/alerts", params={"state": "open"}).json()["total"] == 0
    assert api.get("/api/v1/alerts/999").status_code == 404

    history = api.get(f"/api/v1/schedules/{sid}/sweeps").json()["items"]
    newest, oldest = history[0]["comparison"], history[1]["comparison"]
    assert newest["baseline_sweep_id"] == good and newest["alerts_raised"] == [alert["id"]]
    assert newest["regressions"][0]["text"].startswith("divergence at lr 0.1, none: 0/16 → 8/16")
    assert oldest["baseline_sweep_id"] is None and "no earlier succeeded sweep" in oldest["detail"]


def test_a_resolved_alert_cannot_be_acknowledged(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sid = make_schedule(api)["id"]
    trained(api, session_factory, sid, set())
    trained(api, session_factory, sid, set(range(8)))
    compare_finished(session_factory)
    trained(api, session_factory, sid, set())
    compare_finished(session_factory)
    [alert] = api.get("/api/v1/alerts", params={"schedule_id": sid}).json()["items"]
    assert alert["state"] == "resolved"
    answer = api.post(f"/api/v1/alerts/{alert['id']}/acknowledge")
    assert answer.status_code == 409 and "only an open alert" in answer.json()["detail"]


def test_deliveries_are_listed_with_their_body_and_can_be_sent_again(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sid = make_schedule(api)["id"]
    hook = api.post(f"/api/v1/schedules/{sid}/webhooks",
                    json={"url": "https://93.184.215.14/", "events": ["sweep.finished"]}).json()
    trained(api, session_factory, sid, set())
    compare_finished(session_factory)
    page = api.get(f"/api/v1/schedules/{sid}/webhooks/{hook['id']}/deliveries").json()
    [delivery] = page["items"]
    assert delivery["event"] == "sweep.finished" and delivery["state"] == "pending"
    assert delivery["body"]["type"] == "sweep.finished" and delivery["msg_id"].startswith("msg_")
    again = api.post(f"/api/v1/schedules/{sid}/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 200 and again.json()["msg_id"] == delivery["msg_id"]
    assert json.dumps(again.json()["body"]) == json.dumps(delivery["body"])
