"""/api/v1/sweeps in this process, on SQLite and PostgreSQL: submit, read, list, summarize,
cancel, and every refusal (422 naming the field, 404, 409) storing nothing."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Sweep
from service.db.session import session_scope
from service.environment import environment
from service.lifecycle.queue import claim_next_sweep, finish_sweep, record_live_steps
from service.lifecycle.report import RunReport
from service.states import SweepStatus
from tests.factories import SPEC, hand_made_sweep, make_sweep, report, store


def total_sweeps(api: TestClient) -> int:
    return api.get("/api/v1/sweeps").json()["total"]


def test_submit_stores_the_resolved_spec_and_answers_at_once(api: TestClient) -> None:
    response = api.post("/api/v1/sweeps", json=SPEC)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["name"], created["status"], created["runs_total"]) == ("store-test", "queued", 12)
    assert created["url"] == f"http://localhost/sweeps/{created['id']}"
    sweep = api.get(f"/api/v1/sweeps/{created['id']}").json()
    assert sweep["spec"]["clipping"][1] == {"method": "norm", "max_norm": 1.0, "norm_type": 2}
    assert sweep["spec"]["optimizer"]["momentum"] == 0.0  # every default spelled out
    assert (sweep["status"], sweep["finished"], sweep["claims"]) == ("queued", False, 0)
    assert sweep["progress"] == {"runs_total": 12, "done": 0, "by_outcome": {
        "converged": 0, "diverged": 0, "unconverged": 0, "failed": 0, "cancelled": 0},
        "steps_total": 120, "steps_done": 0, "steps_per_second": None, "eta_seconds": None}


def test_a_sweeps_progress_and_status_follow_its_runs(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
    store(session_factory, sweep_id, [report(2, s, "diverged", trigger="loss_explosion") for s in range(3)])
    with session_scope(session_factory) as session:
        record_live_steps(session, sweep_id, 25)  # the runs still training made 25 steps so far
    sweep = api.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert (sweep["status"], sweep["finished"], sweep["claims"]) == ("running", False, 1)
    progress = sweep["progress"]
    assert progress["done"] == 3 and progress["by_outcome"]["diverged"] == 3
    # Steps: 3 finished runs count their whole budget of 10, the others what they made so far.
    assert (progress["steps_done"], progress["steps_total"]) == (3 * 10 + 25, 120)
    assert progress["eta_seconds"] == pytest.approx((120 - 55) / progress["steps_per_second"])
    store(session_factory, sweep_id, [report(c, s) for c in (0, 1, 3) for s in range(3)])
    with session_scope(session_factory) as session:
        finish_sweep(session, sweep_id)
    sweep = api.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert (sweep["status"], sweep["finished"], sweep["error"]) == ("succeeded", True, None)
    assert sweep["finished_at"] is not None
    assert (sweep["progress"]["steps_done"], sweep["progress"]["eta_seconds"]) == (120, None)


def test_a_sweep_says_what_it_trained_with_and_where(api: TestClient,
                                                     session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    assert api.get(f"/api/v1/sweeps/{sweep_id}").json()["environment"] is None  # no worker yet
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60, environment=environment)
    store(session_factory, sweep_id, [report(0, s) for s in range(3)])
    sweep = api.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["environment"] == environment("adding")
    assert set(sweep["environment"]) == {"clipsweep", "python", "torch", "cuda", "ray", "task_plugin"}
    assert sweep["nodes"] == [{"node": "test", "device": "cpu", "runs": 3}]
    assert api.get("/api/v1/sweeps").json()["items"][0]["nodes"] is None  # the list leaves them out


def test_the_summary_of_hand_made_results(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    summary = api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    assert (summary["sweep_id"], summary["status"], summary["tolerance"]) == (sweep_id, "queued", 0.05)
    cells = {c["cell_index"]: c for c in summary["cells"]}
    assert [(c["lr"], c["clipping"], c["runs"], c["finished"]) for c in cells.values()] == [
        (0.1, "none", 3, 3), (0.1, "norm(max_norm=1.0)", 3, 3), (0.5, "none", 3, 3), (0.5, "norm(max_norm=1.0)", 3, 1)]
    assert cells[2]["diverged"] == 3 and cells[2]["divergence_rate"] == 1.0 and cells[2]["divergence_ci95"][1] == 1.0
    assert cells[2]["vs_none"] is None
    assert cells[3]["vs_none"] == {"pairs": 1, "none_only_diverged": 1, "arm_only_diverged": 0, "none_rate": 1.0,
                                   "arm_rate": 0.0, "rate_difference": -1.0, "p_value": 1.0}
    assert cells[3]["steps_to_target"] == {"value": None, "low": None, "high": None,
                                           "reason": "the cell has runs still training"}
    assert cells[1]["converged_by_step"] == [[4, 1 / 3], [8, 2 / 3]]
    assert cells[0]["telemetry"]["reason"].startswith("no finished run has norm telemetry")
    # Still queued (its last runs pending): the headline gives the counts, not a rate from one run.
    assert summary["headline"] == ("so far 10 of 12 runs have finished (3 diverged); the answer waits until every "
                                   "cell has 8 (the thinnest has 1).")
    with session_scope(session_factory) as session:
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(status=SweepStatus.CANCELLED))
    ended = api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    assert ended["headline"].startswith("norm(max_norm=1.0) cut divergence at lr 0.5 from 100% [44–100] to 0%")
    assert {f["clipping"]: f["stable_lr"]["value"] for f in summary["frontier"]} == {
        "none": None, "norm(max_norm=1.0)": None}
    lenient = api.get(f"/api/v1/sweeps/{sweep_id}/summary", params={"tolerance": 0.99}).json()
    assert {f["clipping"]: f["stable_lr"]["value"] for f in lenient["frontier"]} == {
        "none": 0.1, "norm(max_norm=1.0)": 0.5}


def test_a_summary_follows_every_new_result_and_change_of_status(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    """Summaries are kept between polls (service/api/answers.py): never past a new result or status."""
    sweep_id = hand_made_sweep(session_factory)
    url = f"/api/v1/sweeps/{sweep_id}/summary"
    first = api.get(url).json()
    assert api.get(url).json() == first
    store(session_factory, sweep_id, [report(3, 1, outcome="diverged", trigger="loss_explosion",
                                             diverged_at_step=4, steps_done=4)])
    after = {c["cell_index"]: c for c in api.get(url).json()["cells"]}
    assert (after[3]["finished"], after[3]["diverged"]) == (2, 1)
    assert api.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 202
    cancelled = api.get(url).json()
    assert cancelled["status"] == "cancelled"
    # The last seed is cancelled: cell 3 has nothing left training.
    assert cancelled["cells"][3]["steps_to_target"]["reason"] != after[3]["steps_to_target"]["reason"]


@pytest.mark.parametrize("bad", [2, 0, 1, -0.5, "high", "nan"])
def test_a_tolerance_outside_zero_to_one_is_a_422(api: TestClient, session_factory: sessionmaker[Session],
                                                  bad: Any) -> None:
    sweep_id = make_sweep(session_factory)
    response = api.get(f"/api/v1/sweeps/{sweep_id}/summary", params={"tolerance": bad})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "tolerance"]


def test_non_finite_statistics_arrive_as_strings(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    """A NaN gradient norm makes a cell's maximum infinite: JSON has no Infinity, so it must come
    over HTTP as the string "Infinity", never as null."""
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [
        report(cell, seed, outcome="diverged", trigger="nonfinite_grad", diverged_at_step=2, steps_done=2,
               max_grad_norm=math.nan, divergence_grad_norm=math.nan, norm_histogram={20: 2},
               points=[[0, 0.3, 2.0, False], [2, 5.0, math.nan, False]])
        for cell in range(4) for seed in range(3)])
    summary = api.get(f"/api/v1/sweeps/{sweep_id}/summary")
    assert '"norm_max":"Infinity"' in summary.text
    telemetry = summary.json()["cells"][0]["telemetry"]
    assert telemetry["divergence_norm"] == {"value": "Infinity", "low": None, "high": None, "reason": None}
    assert telemetry["reason"] is None and telemetry["steps"] == 3 * 3
    run = api.get(f"/api/v1/sweeps/{sweep_id}/runs", params={"limit": 1}).json()["items"][0]
    assert run["max_grad_norm"] == "NaN"
    assert api.get(f"/api/v1/runs/{run['id']}/points").json()["grad_norm"] == [2.0, "NaN"]


BODY: dict[str, Any] = {**SPEC, "seeds": 2}


@pytest.mark.parametrize(("body", "loc", "words"), [
    ({**BODY, "learning_rate": [0.1]}, ["body", "learning_rate"], "learning_rates"),
    ({**BODY, "task": {"name": "mnist"}}, ["body", "task", "name"], "adding"),
    ({**BODY, "clipping": [{"method": "clipnorm"}]}, ["body", "clipping", 0, "method"], "norm"),
    ({**BODY, "clipping": [{"method": "norm", "max_norm": 0}]}, ["body", "clipping", 0, "max_norm"], "> 0"),
    ({**BODY, "learning_rates": [0.1, 0.0]}, ["body", "learning_rates"], "> 0"),
    ({**BODY, "learning_rates": ["fast"]}, ["body", "learning_rates", 0], "number"),
    ({**BODY, "seeds": 0}, ["body", "seeds"], ">= 1"),
    ({**BODY, "budget": {"max_steps": 0}}, ["body", "budget", "max_steps"], "greater than or equal to 1"),
    ({**BODY, "optimizer": {"momentum": 1.0}}, ["body", "optimizer", "momentum"], "less than 1"),
    ({**BODY, "optimizer": {"name": "adam", "momentum": 0.9}}, ["body", "optimizer", "momentum"], "beta1"),
    ({**BODY, "learning_rates": [0.1], "clipping": [{"method": "none"}], "seeds": 100_001},
     ["body"], "CLIPSWEEP_MAX_RUNS_PER_SWEEP"),
])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
        api: TestClient, body: dict[str, Any], loc: list[Any], words: str) -> None:
    before = total_sweeps(api)
    response = api.post("/api/v1/sweeps", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and words in e["msg"] for e in errors), errors
    assert total_sweeps(api) == before


def test_a_search_posted_with_only_its_range_is_stored_with_the_seeds_it_will_use(api: TestClient) -> None:
    spec = {k: v for k, v in SPEC.items() if k != "seeds"} | {"learning_rates": {"search": {"low": 0.01, "high": 1.0}}}
    response = api.post("/api/v1/sweeps", json=spec)
    assert response.status_code == 201, response.text
    stored = api.get(f"/api/v1/sweeps/{response.json()['id']}").json()["spec"]
    assert stored["seeds"] == {"adaptive": {"min": 16, "max": 512, "batch": 16, "tolerance": 0.05, "alpha": 0.05,
                                            "first": 0}}
    without = api.post("/api/v1/sweeps", json={k: v for k, v in SPEC.items() if k != "seeds"})
    assert without.status_code == 422
    assert [e["loc"] for e in without.json()["detail"]] == [["body", "seeds"]]
    assert total_sweeps(api) == 1


def test_every_problem_of_a_spec_is_in_one_answer(api: TestClient) -> None:
    """A missing field and an unknown task and arm, together: not the task only once `seeds` is fixed."""
    spec = {"task": {"name": "addng"}, "learning_rates": [0.1], "clipping": [{"method": "nrm"}]}
    for path, body, where in (("/api/v1/sweeps", spec, ["body"]),
                              ("/api/v1/schedules", {"name": "n", "cron": "@daily", "sweep": spec}, ["body", "sweep"])):
        response = api.post(path, json=body)
        assert response.status_code == 422, response.text
        got = {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}
        assert got[(*where, "seeds")].startswith("seeds is required: how many (e.g. 80)")
        assert got[(*where, "task", "name")].startswith("unknown task 'addng'; known: ['adding'")
        assert got[(*where, "clipping", 0, "method")].startswith("unknown clipping method 'nrm'")


@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'"a string"', b"null"])
def test_a_body_that_is_not_a_spec_object_is_a_422(api: TestClient, content: bytes) -> None:
    response = api.post("/api/v1/sweeps", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert total_sweeps(api) == 0


@pytest.mark.parametrize("path", ["/api/v1/sweeps/999999", "/api/v1/sweeps/999999/summary",
                                  "/api/v1/sweeps/999999/runs", "/api/v1/sweeps/999999/export",
                                  "/api/v1/sweeps/999999/cells/0/series", "/api/v1/runs/999999",
                                  "/api/v1/runs/999999/points"])
def test_an_unknown_sweep_or_run_is_a_404(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]
    assert api.post("/api/v1/sweeps/999999/cancel").status_code == 404


def test_listing_is_newest_first_paginated_and_filtered(api: TestClient,
                                                        session_factory: sessionmaker[Session]) -> None:
    ids = [make_sweep(session_factory) for _ in range(3)]
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
    page = api.get("/api/v1/sweeps", params={"limit": 2}).json()
    assert ([s["id"] for s in page["items"]], page["total"], page["limit"]) == (ids[::-1][:2], 3, 2)
    assert [s["id"] for s in api.get("/api/v1/sweeps", params={"offset": 2}).json()["items"]] == [ids[0]]
    running = api.get("/api/v1/sweeps", params={"status": "running"}).json()
    assert [s["id"] for s in running["items"]] == [ids[0]] and running["total"] == 1
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "done"}):
        assert api.get("/api/v1/sweeps", params=bad).status_code == 422


def test_cancel_ends_a_queued_sweep_and_refuses_an_ended_one(api: TestClient,
                                                            session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    response = api.post(f"/api/v1/sweeps/{sweep_id}/cancel")
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["finished"]) == ("cancelled", True)
    assert response.json()["progress"]["by_outcome"]["cancelled"] == 12
    again = api.post(f"/api/v1/sweeps/{sweep_id}/cancel")
    assert again.status_code == 409 and "already ended cancelled" in again.json()["detail"]


def test_a_running_sweep_is_flagged_for_its_worker(api: TestClient, session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
    sweep = api.post(f"/api/v1/sweeps/{sweep_id}/cancel").json()
    assert (sweep["status"], sweep["finished"]) == ("running", False) and sweep["cancel_requested_at"]


def test_an_adaptive_sweeps_summary_judges_stability_by_the_anytime_valid_test(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    """One divergence in 120 seeds clears a 5% tolerance by Wilson's bound, not by the anytime-valid
    test an adaptive sweep's looks require (it takes 153): the frontier waits, the cell says undecided."""
    def one_diverged(cell: int, seed: int) -> RunReport:
        return report(cell, seed, "diverged", trigger="loss_explosion", diverged_at_step=3) if seed == 0 else report(
            cell, seed)

    spec = {**SPEC, "seeds": {"adaptive": {"min": 120, "max": 240, "batch": 16}}}
    sweep_id = make_sweep(session_factory, spec)
    store(session_factory, sweep_id, [one_diverged(c, s) for c in range(4) for s in range(120)])
    summary = api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()
    assert {c["verdict"] for c in summary["cells"]} == {"undecided"}
    assert all(f["stable_lr"]["value"] is None and "anytime-valid" in f["stable_lr"]["reason"]
               for f in summary["frontier"]), summary["frontier"]
    fixed = make_sweep(session_factory, {**SPEC, "seeds": 120})
    store(session_factory, fixed, [one_diverged(c, s) for c in range(4) for s in range(120)])
    summary = api.get(f"/api/v1/sweeps/{fixed}/summary").json()
    assert {c["verdict"] for c in summary["cells"]} == {None}
    assert {f["stable_lr"]["value"] for f in summary["frontier"]} == {0.5}


def test_a_finished_adaptive_sweep_says_which_cells_stopped_out_of_reach(
        api: TestClient, session_factory: sessionmaker[Session]) -> None:
    """4 of 80 seeds diverged (every 25th): 3 of 80, one taken as luck, carried to `max` (512) would
    still be undecided, so that cell stopped short of it, and the summary says so; a clean cell is
    stable and an all-diverged one unstable, neither out of reach; a fixed sweep has no such field."""
    def run(cell: int, seed: int) -> RunReport:
        diverges = cell >= 2 or (cell == 0 and seed % 25 == 0)
        return report(cell, seed, "diverged", trigger="loss_explosion", diverged_at_step=3) if diverges else report(
            cell, seed)

    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": {"adaptive": {"min": 80, "max": 512}}})
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
    store(session_factory, sweep_id, [run(c, s) for c in range(4) for s in range(80)])
    assert {c["out_of_reach"] for c in api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()["cells"]} == {None}
    with session_scope(session_factory) as session:
        finish_sweep(session, sweep_id)
    cells = api.get(f"/api/v1/sweeps/{sweep_id}/summary").json()["cells"]
    assert [(c["verdict"], c["out_of_reach"]) for c in cells] == [
        ("undecided", True), ("stable", False), ("unstable", False), ("unstable", False)]
    fixed = make_sweep(session_factory, {**SPEC, "seeds": 3})
    assert {c["out_of_reach"] for c in api.get(f"/api/v1/sweeps/{fixed}/summary").json()["cells"]} == {None}
