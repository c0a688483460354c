"""A database at schema revision 0004 with data in it, written the way clipsweep wrote it then.

The rows go in with plain SQL on the reflected tables, never through today's models: the point is
to hold migrations to databases written by an older clipsweep. The sweeps cover what a summary
reads: every outcome and trigger, NaN stored as NULL, infinite norms, runs without norm telemetry
(stored before 0003), a running sweep with runs still pending, a queued one, a sweep without a
`none` arm, explicit seeds. `summaries_at_0004.json` holds what clipsweep answered for them at
revision 0004 (written by `python -m tests.service.db.data_at_0004 OUT.json` at that revision, commit 378482f).
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, MetaData

_OPTIMIZER = {"name": "sgd", "momentum": 0.0, "nesterov": False, "beta1": 0.9, "beta2": 0.999, "eps": 1e-08,
              "weight_decay": None, "warmup_steps": 0}
_RESOURCES = {"cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "max_seeds_per_trial": 64,
              "max_concurrent_trials": None, "device": "auto"}
_DIVERGENCE = {"loss_factor": 100.0, "grad_norm_limit": 10000000000.0}
_RNN = {"hidden": 50, "init": "basic_tanh", "init_std": 0.1, "recurrent_gain": 1.0, "eval_size": 500}

# The specs as stored at 0004: resolved, every parameter spelled out.
SPECS: list[dict[str, Any]] = [
    {"name": "mixed", "task": {"name": "adding", "params": {"seq_len": 20, **_RNN}}, "optimizer": _OPTIMIZER,
     "learning_rates": [0.01, 0.1, 0.5],
     "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0, "norm_type": 2},
                  {"method": "agc", "clipping": 0.01, "eps": 0.001, "clip_head": False}],
     "seeds": 8, "budget": {"max_steps": 200, "batch_size": 32}, "divergence": _DIVERGENCE,
     "convergence": {"target_loss": None, "eval_every": 50}, "record_every": 10, "resources": _RESOURCES},
    {"name": "running", "task": {"name": "deep_mlp", "params": {
        "depth": 16, "width": 64, "in_dim": 32, "out_dim": 1, "teacher_width": 16, "noise_std": 0.0,
        "eval_size": 1000}},
     "optimizer": {**_OPTIMIZER, "name": "adamw", "warmup_steps": 5}, "learning_rates": [0.03, 0.3],
     "clipping": [{"method": "none"}, {"method": "value", "clip_value": 0.5}], "seeds": [3, 7, 11, 20],
     "budget": {"max_steps": 100, "batch_size": 16}, "divergence": _DIVERGENCE,
     "convergence": {"target_loss": 0.2, "eval_every": 10}, "record_every": 5, "resources": _RESOURCES},
    {"name": "no-reference", "task": {"name": "quadratic", "params": {
        "dim": 3, "lambda_min": 1.0, "lambda_max": 100.0, "x0_std": 1.0}}, "optimizer": _OPTIMIZER,
     "learning_rates": [0.0198, 0.0202],
     "clipping": [{"method": "norm", "max_norm": 1.0, "norm_type": "inf"}, {"method": "autoclip", "percentile": 10.0}],
     "seeds": 5, "budget": {"max_steps": 300, "batch_size": 32},
     "divergence": {"loss_factor": 50.0, "grad_norm_limit": 1000000.0},
     "convergence": {"target_loss": None, "eval_every": 50}, "record_every": 10, "resources": _RESOURCES},
    {"name": None, "task": {"name": "temporal_order", "params": {"seq_len": 50, **_RNN}}, "optimizer": _OPTIMIZER,
     "learning_rates": [1.0],
     "clipping": [{"method": "zclip", "z_thresh": 2.5, "alpha": 0.97, "warmup_steps": 25, "max_grad_norm": None}],
     "seeds": 2, "budget": {"max_steps": 1000, "batch_size": 32}, "divergence": _DIVERGENCE,
     "convergence": {"target_loss": None, "eval_every": 50}, "record_every": 10, "resources": _RESOURCES},
]
# The arm labels clipsweep wrote then, per spec, in arm order.
LABELS = [["none", "norm(max_norm=1.0)", "agc(clipping=0.01)"], ["none", "value(clip_value=0.5)"],
          ["norm(max_norm=1.0,norm_type=inf)", "autoclip(percentile=10.0)"], ["zclip(z_thresh=2.5)"]]
STATUSES = ["failed", "running", "succeeded", "queued"]
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def _seeds(spec: dict[str, Any]) -> list[int]:
    return list(range(spec["seeds"])) if isinstance(spec["seeds"], int) else list(spec["seeds"])


def _run(rng: random.Random, sweep: int, max_steps: int, cell: int, lr: float) -> dict[str, Any]:
    """One run's outcome columns, drawn so that a higher learning rate diverges more often."""
    if sweep == 3 or (sweep == 1 and rng.random() < 0.4):
        return {"outcome": None}
    if sweep == 0 and cell == 4 and rng.random() < 0.3:
        return {"outcome": rng.choice(["failed", "cancelled"]), "error": "RuntimeError: boom" if cell else None}
    initial = rng.uniform(0.1, 1.0)
    norms = {str(b): rng.randint(1, 40) for b in sorted(rng.sample(range(-10, 30), 4))}
    telemetry = {"norm_histogram": None if sweep == 2 and cell == 3 else norms,
                 "clipped_steps": rng.randint(0, max_steps), "max_grad_norm": rng.uniform(1, 50),
                 "initial_loss": initial, "min_loss": initial / 3, "final_eval_loss": initial / 2}
    roll = rng.random() * (1 + 4 * lr)
    if roll > 1.0:
        step = rng.randint(1, max_steps - 1)
        trigger = rng.choice(["nonfinite_loss", "nonfinite_grad", "loss_explosion", "grad_explosion"])
        run = {**telemetry, "outcome": "diverged", "trigger": trigger, "diverged_at_step": step, "steps_done": step,
               "final_loss": None if trigger == "nonfinite_loss" else initial * 150, "divergence_grad_norm": 7.5}
        if trigger == "nonfinite_grad":
            run.update(max_grad_norm=None, divergence_grad_norm=None)  # NaN, stored as NULL
        if trigger == "grad_explosion":
            run.update(max_grad_norm=float("inf"), divergence_grad_norm=float("inf"))
        return run
    if roll > 0.45:
        step = rng.randrange(50, max_steps + 1, 50)
        return {**telemetry, "outcome": "converged", "converged_at_step": step, "steps_done": step,
                "final_loss": initial / 4}
    return {**telemetry, "outcome": "unconverged", "steps_done": max_steps, "final_loss": initial / 2}


def _points(run: dict[str, Any], record_every: int) -> list[tuple[int, float | None, float | None, bool]]:
    last = run["steps_done"] - (0 if run["outcome"] == "diverged" else 1)
    steps = [*range(0, last, record_every * 5), last]
    points = [(s, 1.0 / (s + 1), 2.0 + s % 3, s % 2 == 0) for s in steps]
    trigger = run.get("trigger")
    if trigger == "nonfinite_loss":
        points[-1] = (last, None, None, False)
    elif trigger == "nonfinite_grad":
        points[-1] = (last, 3.0, None, False)
    elif trigger == "loss_explosion":
        points[-1] = (last, 1e6, None, False)
    elif trigger == "grad_explosion":
        points[-1] = (last, 4.0, float("inf"), False)
    return points


def build(engine: Engine) -> None:
    """Write the sweeps into a database that is at revision 0004 and empty."""
    meta = MetaData()
    meta.reflect(engine)
    sweeps, runs, points = meta.tables["sweeps"], meta.tables["runs"], meta.tables["run_points"]
    rng = random.Random(4)
    with engine.begin() as conn:
        for i, (spec, labels, status) in enumerate(zip(SPECS, LABELS, STATUSES)):
            seeds = _seeds(spec)
            total = len(spec["learning_rates"]) * len(spec["clipping"]) * len(seeds)
            created = T0 + timedelta(hours=i)
            sweep_id = conn.execute(sweeps.insert().values(
                name=spec["name"] or spec["task"]["name"], task=spec["task"]["name"], spec=spec, status=status,
                runs_total=total, error="1 run(s) failed; first error: RuntimeError: boom" if status == "failed" else None,
                worker_id="host:1" if status == "running" else None, created_at=created,
                started_at=None if status == "queued" else created + timedelta(seconds=5),
                finished_at=created + timedelta(minutes=3) if status in ("failed", "succeeded") else None,
                heartbeat_at=created + timedelta(minutes=1) if status == "running" else None,
                claims=0 if status == "queued" else 1)).inserted_primary_key[0]
            cell = 0
            for lr in spec["learning_rates"]:
                for arm, label in zip(spec["clipping"], labels):
                    params = {k: v for k, v in arm.items() if k != "method"}
                    for seed in seeds:
                        run = _run(rng, i, spec["budget"]["max_steps"], cell, lr)
                        done = run["outcome"] is not None
                        run_id = conn.execute(runs.insert().values(
                            sweep_id=sweep_id, cell_index=cell, lr=lr, clip_method=arm["method"],
                            clip_params=params, clip_label=label, seed=seed, attempts=1 if done else 0,
                            device="cpu" if done else None, node="host:abc" if done else None,
                            finished_at=created + timedelta(minutes=2) if done else None, **run)
                        ).inserted_primary_key[0]
                        if run["outcome"] in ("converged", "diverged", "unconverged"):
                            conn.execute(points.insert(), [
                                {"run_id": run_id, "step": s, "loss": loss, "grad_norm": norm, "clipped": clipped}
                                for s, loss, norm, clipped in _points(run, spec["record_every"])])
                    cell += 1


def answers(client: Any) -> dict[str, Any]:
    """What the API answers about every stored sweep: the sweep, its summary at two tolerances,
    its runs, each cell's series and the detail of its first run, and both exports as CSV."""
    out: dict[str, Any] = {}
    for sweep in client.get("/api/v1/sweeps", params={"limit": 100}).json()["items"]:
        base = f"/api/v1/sweeps/{sweep['id']}"
        runs = client.get(f"{base}/runs", params={"limit": 1000}).json()
        cells = sorted({r["cell_index"] for r in runs["items"]})
        first = {c: next(r["id"] for r in runs["items"] if r["cell_index"] == c) for c in cells}
        out[str(sweep["id"])] = {
            "sweep": client.get(base).json(),
            "summary": client.get(f"{base}/summary").json(),
            "summary_lenient": client.get(f"{base}/summary", params={"tolerance": 0.5}).json(),
            "runs": runs,
            "series": {str(c): client.get(f"{base}/cells/{c}/series").json() for c in cells},
            "run_detail": {str(c): client.get(f"/api/v1/runs/{first[c]}").json() for c in cells},
            "export_runs": client.get(f"{base}/export").text,
            "export_points": client.get(f"{base}/export", params={"include": "points"}).text,
        }
    return out


if __name__ == "__main__":  # python -m tests.service.db.data_at_0004 OUT.json, at revision 0004
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from service.db import schema
    from service.db.session import make_engine
    from service.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/at-0004.sqlite3"
        schema.upgrade(url, "0004")
        engine = make_engine(url)
        build(engine)
        engine.dispose()
        with TestClient(create_app(Settings(database_url=url))) as client:
            Path(sys.argv[1]).write_text(json.dumps(answers(client), indent=1, sort_keys=True) + "\n")
