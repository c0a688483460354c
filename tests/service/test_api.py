"""The HTTP API end to end: a real `clipsweep serve` (uvicorn on loopback, its worker on a local
Ray, embedded SQLite), driven over HTTP as a user would."""

from __future__ import annotations

import io
import math
import time
from typing import Any

import pyarrow.parquet as pq
import pytest

from service.db.session import make_engine, make_session_factory, session_scope
from service.queue import finish_sweep
from service.results import store_results
from service.settings import Settings
from service.spec import parse_spec
from service.sweeps import create_sweep
from tests.conftest import Server
from tests.service.test_store import SPEC, result
from trainers.tasks import TASKS

pytestmark = pytest.mark.slow

SMALL: dict[str, Any] = {
    "name": "api-small",
    "task": {"name": "adding", "params": {"seq_len": 50}},
    "learning_rates": [0.1, 0.6],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 6,
    "budget": {"max_steps": 60, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 6},
}


def submit(server: Server, spec: dict[str, Any]) -> dict[str, Any]:
    response = server.http.post("/api/v1/sweeps", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def total_sweeps(server: Server) -> int:
    return server.http.get("/api/v1/sweeps").json()["total"]


@pytest.fixture(scope="module")
def small(server: Server) -> dict[str, Any]:
    """The SMALL sweep, submitted and trained to the end; the answer to its POST."""
    created = submit(server, SMALL)
    server.wait_finished(created["id"])
    return created


def test_post_to_finished_summary(server: Server, small: dict[str, Any]) -> None:
    created = small
    assert created["runs_total"] == 24 and created["status"] == "queued"
    assert created["url"].endswith(f"/sweeps/{created['id']}")

    sweep = server.wait_finished(created["id"])
    assert sweep["status"] == "succeeded", sweep["error"]
    assert sweep["progress"]["done"] == 24
    assert sum(sweep["progress"]["by_outcome"].values()) == 24
    assert sweep["spec"]["clipping"][1] == {"method": "norm", "max_norm": 1.0, "norm_type": 2}
    assert sweep["started_at"] and sweep["finished_at"]

    cells = {(c["lr"], c["clipping"]): c for c in server.http.get(f"/api/v1/sweeps/{created['id']}/summary").json()["cells"]}
    assert len(cells) == 4
    unclipped, clipped = cells[(0.6, "none")], cells[(0.6, "norm(max_norm=1.0)")]
    assert unclipped["diverged"] >= 5 and clipped["diverged"] == 0
    lo, hi = unclipped["divergence_ci95"]
    assert lo <= unclipped["divergence_rate"] <= hi
    assert clipped["divergence_ci95"][0] == 0.0
    # seed by seed against none at lr 0.6: the seeds that diverged only unclipped are the discordant pairs
    paired = clipped["vs_none"]
    assert paired["pairs"] == 6 and paired["arm_only_diverged"] == 0
    assert paired["none_only_diverged"] == unclipped["diverged"]
    assert paired["p_value"] == 2 * 0.5 ** unclipped["diverged"]
    assert unclipped["vs_none"] is None
    assert clipped["steps_to_target"]["value"] is None and clipped["steps_to_target"]["reason"]

    summary = server.http.get(f"/api/v1/sweeps/{created['id']}/summary", params={"tolerance": 0.5}).json()
    frontier = {f["clipping"]: f["stable_lr"] for f in summary["frontier"]}
    assert summary["tolerance"] == 0.5
    assert frontier["norm(max_norm=1.0)"]["value"] == 0.6  # 0/6 diverged: upper bound 0.39 < 50%
    assert frontier["none"]["value"] in (0.1, None)
    for bad in (2, 0, 1, "high"):
        assert server.http.get(f"/api/v1/sweeps/{created['id']}/summary", params={"tolerance": bad}).status_code == 422

    runs = server.http.get(f"/api/v1/sweeps/{created['id']}/runs", params={"limit": 100}).json()
    assert runs["total"] == 24 and len(runs["items"]) == 24
    diverged = [r for r in runs["items"] if r["outcome"] == "diverged"]
    assert diverged and all(r["trigger"] and r["diverged_at_step"] is not None for r in diverged)
    assert all(r["steps_done"] == r["diverged_at_step"] for r in diverged)
    assert all(r["device"] == "cpu" and r["node"] for r in runs["items"])
    # Paired by construction: every cell ran the same seeds.
    assert {r["seed"] for r in runs["items"] if r["cell_index"] == 0} == {r["seed"] for r in runs["items"] if r["cell_index"] == 3}


def test_summary_tells_the_answer_and_the_telemetry(server: Server, small: dict[str, Any]) -> None:
    summary = server.http.get(f"/api/v1/sweeps/{small['id']}/summary", params={"tolerance": 0.5}).json()
    cells = {(c["lr"], c["clipping"]): c for c in summary["cells"]}
    unclipped, clipped = cells[(0.6, "none")], cells[(0.6, "norm(max_norm=1.0)")]
    assert summary["headline"].startswith(
        f"norm(max_norm=1.0) cut divergence at lr 0.6 from {unclipped['diverged'] / 6:.0%}")
    assert "; highest stable lr 0.6 vs " in summary["headline"]
    t = clipped["telemetry"]
    assert 0 < t["clipped_fraction"] <= 1 and t["steps"] == 6 * 60
    assert t["norm_p50"] <= t["norm_p90"] <= t["norm_p99"] <= t["norm_max"]
    assert t["norm_max"] > 1.0  # clipped steps had a pre-clip norm above max_norm
    assert t["divergence_norm"]["value"] is None and t["diverged_with_norm"] == 0
    u = unclipped["telemetry"]
    assert u["diverged_with_norm"] <= unclipped["diverged"] and u["divergence_norm"]["value"] is not None
    for c in summary["cells"]:
        fractions = [f for _, f in c["converged_by_step"]]
        assert fractions == sorted(fractions) and all(0 < f <= 1 for f in fractions)


def test_non_finite_statistics_arrive_as_strings(server: Server) -> None:
    """A NaN gradient norm makes a cell's maximum infinite: JSON has no Infinity, so it must come
    over HTTP as the string "Infinity", never as null. The sweep is stored whole in one transaction
    (queued, results, finished), so the server's worker never sees it queued."""
    engine = make_engine(Settings(data_dir=server.data_dir).resolved_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            sweep = create_sweep(session, parse_spec(SPEC), max_runs=1000)
            session.flush()
            store_results(session, sweep.id, [
                result(cell, seed, outcome="diverged", trigger="nonfinite_grad", diverged_at_step=2, steps_done=2,
                       max_grad_norm=math.nan, divergence_grad_norm=math.nan, norm_histogram={20: 2},
                       points=[[0, 0.3, 2.0, False], [2, 5.0, math.nan, False]])
                for cell in range(4) for seed in range(3)])
            finish_sweep(session, sweep.id)
            sweep_id = sweep.id
    finally:
        engine.dispose()
    summary = server.http.get(f"/api/v1/sweeps/{sweep_id}/summary")
    assert '"norm_max":"Infinity"' in summary.text
    telemetry = summary.json()["cells"][0]["telemetry"]
    assert telemetry["divergence_norm"] == {"value": "Infinity", "low": None, "high": None, "reason": None}
    assert telemetry["reason"] is None and telemetry["steps"] == 3 * 3
    run = server.http.get(f"/api/v1/sweeps/{sweep_id}/runs", params={"limit": 1}).json()["items"][0]
    assert run["max_grad_norm"] == "NaN"
    assert server.http.get(f"/api/v1/runs/{run['id']}/points").json()["grad_norm"] == [2.0, "NaN"]


def test_runs_filter_series_and_reproduce(server: Server, small: dict[str, Any]) -> None:
    base = f"/api/v1/sweeps/{small['id']}"
    diverged = server.http.get(f"{base}/runs", params={"outcome": "diverged", "lr": 0.6, "clipping": "none"}).json()
    assert diverged["total"] >= 5 and {r["outcome"] for r in diverged["items"]} == {"diverged"}
    assert {(r["lr"], r["clipping"]) for r in diverged["items"]} == {(0.6, "none")}
    both = server.http.get(f"{base}/runs", params=[("outcome", "diverged"), ("outcome", "unconverged")]).json()
    everything = server.http.get(f"{base}/runs").json()["items"]
    assert both["total"] == sum(r["outcome"] in ("diverged", "unconverged") for r in everything)
    bad = server.http.get(f"{base}/runs", params={"lr": 0.3})
    assert bad.status_code == 422
    assert bad.json()["detail"][0] == {"loc": ["query", "lr"], "type": "value_error",
                                       "msg": "the sweep has no learning rate 0.3; it has [0.1, 0.6]"}
    assert server.http.get(f"{base}/runs", params={"outcome": "exploded"}).status_code == 422

    run = diverged["items"][0]
    points = server.http.get(f"/api/v1/runs/{run['id']}/points").json()
    assert points["steps"][-1] == run["diverged_at_step"] and points["steps"][0] == 0
    assert len(points["loss"]) == len(points["grad_norm"]) == len(points["clipped"]) == len(points["steps"])
    series = server.http.get(f"{base}/cells/{run['cell_index']}/series").json()
    assert [r["seed"] for r in series["runs"]] == list(range(6))
    [same] = [r for r in series["runs"] if r["run_id"] == run["id"]]
    assert same["steps"] == points["steps"] and same["diverged_at_step"] == run["diverged_at_step"]
    assert server.http.get(f"{base}/cells/9/series").status_code == 422
    assert server.http.get(f"{base}/cells/9/series").json()["detail"] == [{
        "loc": ["path", "cell_index"], "type": "value_error", "msg": "the sweep has no cell 9; its cells are 0 to 3"}]
    assert server.http.get(f"{base}/cells/-1/series").status_code == 422
    clipped = server.http.get(f"{base}/runs", params={"clipping": "norm(max_norm=1.0)", "cell": 3}).json()
    assert clipped["total"] == 6 and {r["clipping"] for r in clipped["items"]} == {"norm(max_norm=1.0)"}
    assert server.http.get(f"{base}/runs", params={"clipping": "norm"}).status_code == 422

    # The run page's recipe trains the same run again, with torch and trainers/ alone.
    detail = server.http.get(f"/api/v1/runs/{run['id']}").json()
    assert detail["sweep_id"] == small["id"] and detail["config"]["lr"] == 0.6
    scope: dict[str, Any] = {}
    exec(detail["reproduce"].replace("print(", "_ = ("), scope)
    again = scope["result"]
    assert (again.outcome.value, again.diverged_at_step) == ("diverged", run["diverged_at_step"])


def test_export_streams_csv_and_parquet(server: Server, small: dict[str, Any]) -> None:
    base = f"/api/v1/sweeps/{small['id']}/export"
    runs = server.http.get(base)
    assert runs.status_code == 200 and runs.headers["content-type"].startswith("text/csv")
    assert runs.headers["content-disposition"] == f'attachment; filename="sweep-{small["id"]}-runs.csv"'
    assert len(runs.text.splitlines()) == 1 + 24
    points = server.http.get(base, params={"format": "parquet", "include": "points"})
    assert points.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(points.content))
    stored = sum(len(server.http.get(f"/api/v1/runs/{r['id']}/points").json()["steps"])
                 for r in server.http.get(f"/api/v1/sweeps/{small['id']}/runs").json()["items"])
    assert table.num_rows == stored
    assert server.http.get(base, params={"format": "xlsx"}).status_code == 422


def test_progress_is_visible_while_the_sweep_runs(server: Server) -> None:
    spec = {**SMALL, "name": "api-progress", "learning_rates": [0.05], "clipping": [{"method": "norm"}],
            # Seeds of one trial train in lockstep and finish together; several trials finish apart.
            "seeds": 8, "budget": {"max_steps": 300, "batch_size": 16}, "resources": {"max_seeds_per_trial": 2}}
    sweep_id = submit(server, spec)["id"]
    seen: set[int] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sweep = server.http.get(f"/api/v1/sweeps/{sweep_id}").json()
        if sweep["status"] == "running":
            seen.add(sweep["progress"]["done"])
        if sweep["status"] == "succeeded":
            break
        time.sleep(0.1)
    partial = {d for d in seen if 0 < d < 8}
    assert partial, f"only saw progress {sorted(seen)}: results were written only at the end"


def test_a_training_that_raises_fails_its_sweep_with_the_message_and_the_worker_goes_on(server: Server) -> None:
    broken = {**SMALL, "name": "api-broken", "seeds": 2, "resources": {"device": "cuda"}}
    sweep = server.wait_finished(submit(server, broken)["id"])
    assert sweep["status"] == "failed"
    assert "cuda" in sweep["error"] and "8 run(s) failed" in sweep["error"]
    runs = server.http.get(f"/api/v1/sweeps/{sweep['id']}/runs").json()["items"]
    assert {r["outcome"] for r in runs} == {"failed"}
    assert all("cuda" in r["error"] for r in runs)

    after = server.wait_finished(submit(server, {**SMALL, "name": "api-after", "seeds": 1})["id"])
    assert after["status"] == "succeeded"


@pytest.mark.parametrize(("body", "loc", "words"), [
    ({**SMALL, "learning_rate": [0.1]}, ["body", "learning_rate"], "learning_rates"),
    ({**SMALL, "task": {"name": "mnist"}}, ["body", "task", "name"], "adding"),
    ({**SMALL, "clipping": [{"method": "clipnorm"}]}, ["body", "clipping", 0, "method"], "norm"),
    ({**SMALL, "clipping": [{"method": "norm", "max_norm": 0}]}, ["body", "clipping", 0, "max_norm"], "> 0"),
    ({**SMALL, "learning_rates": [0.1, 0.0]}, ["body", "learning_rates"], "> 0"),
    ({**SMALL, "learning_rates": ["fast"]}, ["body", "learning_rates", 0], "number"),
    ({**SMALL, "seeds": 0}, ["body", "seeds"], ">= 1"),
    ({**SMALL, "budget": {"max_steps": 0}}, ["body", "budget", "max_steps"], "greater than or equal to 1"),
    ({**SMALL, "learning_rates": [0.1], "clipping": [{"method": "none"}], "seeds": 100_001},
     ["body"], "CLIPSWEEP_MAX_RUNS_PER_SWEEP"),
])
def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(
        server: Server, body: dict[str, Any], loc: list[Any], words: str) -> None:
    before = total_sweeps(server)
    response = server.http.post("/api/v1/sweeps", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and words in e["msg"] for e in errors), errors
    assert total_sweeps(server) == before


def test_a_body_that_is_not_json_is_a_422(server: Server) -> None:
    before = total_sweeps(server)
    response = server.http.post("/api/v1/sweeps", content=b"{not json",
                                headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert total_sweeps(server) == before


@pytest.mark.parametrize("path", ["/api/v1/sweeps/999999", "/api/v1/sweeps/999999/summary",
                                  "/api/v1/sweeps/999999/runs", "/api/v1/sweeps/999999/export",
                                  "/api/v1/sweeps/999999/cells/0/series", "/api/v1/runs/999999",
                                  "/api/v1/runs/999999/points"])
def test_an_unknown_sweep_is_a_404(server: Server, path: str) -> None:
    response = server.http.get(path)
    assert response.status_code == 404
    assert "999999" in response.json()["detail"]


def test_listing_is_newest_first_and_paginated(server: Server) -> None:
    page = server.http.get("/api/v1/sweeps", params={"limit": 1}).json()
    assert page["limit"] == 1 and len(page["items"]) <= 1
    everything = server.http.get("/api/v1/sweeps", params={"limit": 1000}).json()["items"]
    assert [s["id"] for s in everything] == sorted((s["id"] for s in everything), reverse=True)
    assert server.http.get("/api/v1/sweeps", params={"limit": 0}).status_code == 422


def test_registries_are_listed(server: Server) -> None:
    listing = server.http.get("/api/v1/tasks").json()
    tasks, errors = listing["tasks"], listing["plugin_errors"]
    assert errors == {}
    assert "adding" in {t["name"] for t in tasks}
    methods = {m["name"]: m for m in server.http.get("/api/v1/clipping-methods").json()}
    assert {"none", "norm", "value", "per_layer", "agc", "autoclip", "zclip"} <= set(methods)
    assert {"name": "max_norm", "type": "float", "default": 1.0} in methods["norm"]["params"]
    assert all(m["doc"] and "\n" not in m["doc"] for m in methods.values())
    assert {"adding", "temporal_order", "deep_mlp", "tiny_transformer", "quadratic"} <= {t["name"] for t in tasks}


# Small, quick versions of each built-in task (a task missing here runs with its defaults).
QUICK_TASKS: dict[str, dict[str, Any]] = {
    "adding": {"seq_len": 20, "hidden": 16, "eval_size": 32},
    "temporal_order": {"seq_len": 20, "hidden": 16, "eval_size": 32},
    "deep_mlp": {"depth": 4, "width": 16, "in_dim": 8, "eval_size": 32},
    "tiny_transformer": {"seq_len": 8, "vocab": 8, "d_model": 16, "n_layers": 1, "n_heads": 2, "eval_size": 16},
    "quadratic": {},
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_with_every_clipping_method_runs_through_the_service(server: Server, task: str) -> None:
    methods = server.http.get("/api/v1/clipping-methods").json()
    spec = {
        "name": f"all-methods-{task}", "task": {"name": task, "params": QUICK_TASKS.get(task, {})},
        "learning_rates": [0.01], "clipping": [{"method": m["name"]} for m in methods],
        "seeds": 2, "budget": {"max_steps": 30, "batch_size": 8}, "resources": {"max_seeds_per_trial": 2},
    }
    sweep = server.wait_finished(submit(server, spec)["id"])
    assert sweep["status"] == "succeeded", sweep["error"]
    assert sweep["progress"]["done"] == 2 * len(methods)
    cells = server.http.get(f"/api/v1/sweeps/{sweep['id']}/summary").json()["cells"]
    assert {c["clip_method"] for c in cells} == {m["name"] for m in methods}
