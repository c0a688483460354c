"""The service end to end: a real `clipsweep serve` (uvicorn on loopback, its worker on a local
Ray, embedded SQLite), driven over HTTP and the CLI as a user would, for everything that needs
real training. Requests that need no trainer are tested in process (tests/service/api/)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

from tests.harness import ROOT, Server

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
    # What the embedded worker trained with, recorded when it claimed the sweep, and where.
    assert sweep["environment"]["torch"] == torch.__version__ and sweep["environment"]["task_plugin"] is None
    assert [n["device"] for n in sweep["nodes"]] == ["cpu"] and sum(n["runs"] for n in sweep["nodes"]) == 24

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


def test_a_trained_runs_series_and_the_recipe_that_trains_it_again(server: Server, small: dict[str, Any]) -> None:
    base = f"/api/v1/sweeps/{small['id']}"
    diverged = server.http.get(f"{base}/runs", params={"outcome": "diverged", "lr": 0.6, "clipping": "none"}).json()
    assert diverged["total"] >= 5 and {r["outcome"] for r in diverged["items"]} == {"diverged"}

    run = diverged["items"][0]
    points = server.http.get(f"/api/v1/runs/{run['id']}/points").json()
    assert points["steps"][-1] == run["diverged_at_step"] and points["steps"][0] == 0
    assert len(points["loss"]) == len(points["grad_norm"]) == len(points["clipped"]) == len(points["steps"])
    # The peak norm is a point whatever record_every says: the run's chart shows its table's maximum.
    if run["max_grad_norm"] is not None:
        assert max(n for n in points["grad_norm"] if n is not None) == pytest.approx(run["max_grad_norm"])
    series = server.http.get(f"{base}/cells/{run['cell_index']}/series").json()
    assert [r["seed"] for r in series["runs"]] == list(range(6))
    [same] = [r for r in series["runs"] if r["run_id"] == run["id"]]
    assert same["steps"] == points["steps"] and same["diverged_at_step"] == run["diverged_at_step"]

    # The run page's recipe trains the same run again, with torch and trainers/ alone.
    detail = server.http.get(f"/api/v1/runs/{run['id']}").json()
    assert detail["sweep_id"] == small["id"] and detail["config"]["lr"] == 0.6
    scope: dict[str, Any] = {}
    exec(detail["reproduce"].replace("print(", "_ = ("), scope)
    again = scope["result"]
    assert (again.outcome.value, again.diverged_at_step) == ("diverged", run["diverged_at_step"])


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


def test_a_frontier_search_runs_all_its_rounds_in_one_tune_run(server: Server) -> None:
    """Bisection with adaptive seeds on the quadratic (plain gradient descent diverges exactly above
    2/λmax = 0.02): round after round of probes and seeds, planned from what is stored, in one Ray
    Tune run whose reused actors train every round."""
    spec = {"name": "api-search", "task": {"name": "quadratic"}, "budget": {"max_steps": 200, "batch_size": 1},
            "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
            "learning_rates": {"search": {"low": 1e-3, "high": 1.0, "ratio": 2}},
            "seeds": {"adaptive": {"min": 8, "max": 32, "batch": 8, "tolerance": 0.2}}}
    sweep_id = submit(server, spec)["id"]
    assert server.wait_finished(sweep_id)["status"] == "succeeded"
    found = server.http.get(f"/api/v1/sweeps/{sweep_id}/summary").json()["search"]
    answers = {arm["clipping"]: arm["highest_stable_lr"] for arm in found["arms"]}
    assert answers == {"none": 0.016, "norm(max_norm=1.0)": 0.512}
    assert all(len(arm["probes"]) >= 3 for arm in found["arms"])
    # Tune writes one experiment state per run (Tuner.fit) of the sweep, at its start.
    experiment = server.data_dir / "ray_results" / f"sweep-{sweep_id}"
    assert len(list(experiment.glob("experiment_state-*.json"))) == 1, sorted(p.name for p in experiment.iterdir())


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


def test_every_clipping_method_runs_through_the_service(server: Server) -> None:
    """Every task with every method is trained and stored in process (worker/test_every_task_reports.py);
    here every method goes through Ray and the service once."""
    methods = server.http.get("/api/v1/clipping-methods").json()
    spec = {
        "name": "all-methods", "task": {"name": "adding", "params": {"seq_len": 20, "hidden": 16, "eval_size": 32}},
        "learning_rates": [0.01], "clipping": [{"method": m["name"]} for m in methods],
        "seeds": 2, "budget": {"max_steps": 30, "batch_size": 8}, "resources": {"max_seeds_per_trial": 2},
    }
    sweep = server.wait_finished(submit(server, spec)["id"])
    assert sweep["status"] == "succeeded", sweep["error"]
    assert sweep["progress"]["done"] == 2 * len(methods)
    cells = server.http.get(f"/api/v1/sweeps/{sweep['id']}/summary").json()["cells"]
    assert {c["clip_method"] for c in cells} == {m["name"] for m in methods}
    assert all(c["telemetry"]["steps"] for c in cells)


LONG: dict[str, Any] = {
    "name": "to-cancel",
    "task": {"name": "adding", "params": {"seq_len": 20, "hidden": 16}},
    "learning_rates": [0.05],
    "clipping": [{"method": "norm", "max_norm": 1.0}],
    "seeds": 24,
    "budget": {"max_steps": 1500, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 2},
}


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args, "--server", server.url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_cancel_stops_a_running_sweep_within_seconds(server: Server) -> None:
    sweep_id = submit(server, LONG)["id"]
    deadline = time.monotonic() + 120
    while server.http.get(f"/api/v1/sweeps/{sweep_id}").json()["progress"]["done"] < 2:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.2)
    started = time.monotonic()
    done = cli(server, "cancel", str(sweep_id), "--wait", "--poll", "0.2")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout.splitlines()[-1]
    assert took < 30, f"cancel took {took:.0f} s"
    sweep = server.http.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "cancelled" and sweep["finished"] and sweep["cancel_requested_at"]
    by_outcome = sweep["progress"]["by_outcome"]
    assert by_outcome.get("cancelled", 0) > 0 and sum(by_outcome.values()) == 24
    assert by_outcome.get("unconverged", 0) + by_outcome.get("converged", 0) + by_outcome.get("diverged", 0) >= 2
    refused = cli(server, "cancel", str(sweep_id))
    assert refused.returncode != 0 and "already ended cancelled" in refused.stderr


def test_a_sweep_the_cluster_cannot_place_says_so_and_the_queue_goes_on(server: Server) -> None:
    gpu = {**LONG, "name": "needs-gpu", "seeds": 2, "resources": {"gpus_per_trial": 0.25, "device": "cuda"}}
    cpu = {**LONG, "name": "after-it", "seeds": 2, "budget": {"max_steps": 50}}
    gpu_id = submit(server, gpu)["id"]
    cpu_id = submit(server, cpu)["id"]
    assert server.wait_finished(cpu_id)["status"] == "succeeded"
    sweep = server.http.get(f"/api/v1/sweeps/{gpu_id}").json()
    assert sweep["status"] == "queued"
    assert sweep["status_detail"] == "waiting for resources: needs 0.25 GPU per trial, the cluster has 0"
    shown = cli(server, "status", str(gpu_id))
    assert "waiting for resources: needs 0.25 GPU" in shown.stdout
    assert server.http.post(f"/api/v1/sweeps/{gpu_id}/cancel").json()["status"] == "cancelled"
