"""trainers.ray_adapter.result_payload: a RunResult as plain JSON-able data for the service."""

from __future__ import annotations

import json
import math
import platform
from typing import Any

import pytest
import torch

from tests.trainers.helpers import small_config
from trainers import (
    ConvergenceConfig,
    DivergenceConfig,
    Outcome,
    Point,
    RunResult,
    TrainConfig,
    Trigger,
    ray_adapter,
    run_seed,
)
from trainers.vectorized import run_chunk

# Every field of a RunResult: the service refuses a payload with one more or one less
# (service/worker/report.py).
FIELDS = {"outcome", "trigger", "diverged_at_step", "converged_at_step", "steps_done", "initial_loss",
          "final_loss", "min_loss", "final_eval_loss", "clipped_steps", "max_grad_norm", "divergence_grad_norm",
          "norm_histogram", "points"}


def test_hand_built_result() -> None:
    result = RunResult(
        outcome=Outcome.DIVERGED, steps_done=3, trigger=Trigger.NONFINITE_GRAD, diverged_at_step=3,
        initial_loss=1.0, final_loss=2.0, min_loss=0.5, clipped_steps=1, max_grad_norm=math.nan,
        points=[Point(0, 1.0, 2.0, False), Point(3, 2.0, math.nan, True)])
    payload = ray_adapter.result_payload(result)
    assert set(payload) == FIELDS
    assert payload["outcome"] == "diverged" and payload["trigger"] == "nonfinite_grad"
    assert type(payload["outcome"]) is str and type(payload["trigger"]) is str
    assert payload["points"][0] == [0, 1.0, 2.0, False]
    step, loss, norm, clipped = payload["points"][1]
    assert (step, loss, clipped) == (3, 2.0, True) and math.isnan(norm)
    assert payload["steps_done"] == 3 and payload["diverged_at_step"] == 3
    assert payload["converged_at_step"] is None and payload["final_eval_loss"] is None

    text = json.dumps(payload, allow_nan=True)
    back = json.loads(text)
    assert back["points"][0] == [0, 1.0, 2.0, False]
    assert math.isnan(back["max_grad_norm"])


def test_result_does_not_change() -> None:
    """The payload is a copy: editing it leaves the RunResult as it was."""
    result = run_seed(small_config(), 0)
    payload = ray_adapter.result_payload(result)
    payload["points"].clear()
    assert len(result.points) == 5 and result.outcome is Outcome.UNCONVERGED


@pytest.mark.parametrize(("config", "outcome", "trigger"), [
    (small_config(max_steps=6, record_every=2), "unconverged", None),
    (small_config(max_steps=20, convergence=ConvergenceConfig(target_loss=10.0, eval_every=2)),
     "converged", None),
    (small_config(lr=1.0e3, max_steps=20), "diverged", "loss_explosion"),
    (small_config(lr=1.0e20, max_steps=20,
                  divergence=DivergenceConfig(loss_factor=math.inf, grad_norm_limit=math.inf)),
     "diverged", "nonfinite_loss"),
], ids=["unconverged", "converged", "loss_explosion", "nonfinite_loss"])
def test_real_runs_serialize(config: TrainConfig, outcome: str, trigger: str | None) -> None:
    result = run_seed(config, 1)
    payload = ray_adapter.result_payload(result)
    back = json.loads(json.dumps(payload, allow_nan=True))
    assert set(back) == FIELDS
    assert back["outcome"] == outcome and back["trigger"] == trigger
    assert back["steps_done"] == result.steps_done
    assert len(back["points"]) == len(result.points)
    for row, point in zip(back["points"], result.points):
        assert len(row) == 4
        assert row[0] == point.step and row[3] is point.clipped
        for got, want in ((row[1], point.loss), (row[2], point.grad_norm)):
            assert got == want or (math.isnan(got) and math.isnan(want)) or (
                got is None and want is None)


def test_train_chunk_reports_each_seed_of_the_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainable turns Tune's plain dict back into the TrainConfig, trains the chunk with
    run_chunk (vectorized here: 3 seeds of the adding task) and reports one payload per seed, as
    each finishes."""
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(ray_adapter.tune, "report", reports.append)
    monkeypatch.setattr(ray_adapter, "PROGRESS_SECONDS", math.inf)  # results only, however slow the machine
    monkeypatch.setattr(torch, "set_num_threads", lambda n: reports.append({"threads": n}))
    config = small_config(max_steps=6, record_every=2)
    ray_adapter.train_chunk({"chunk": {"train": json.loads(json.dumps(config.to_dict())), "cell_index": 7,
                                       "seeds": [4, 0, 2], "threads": 1.5, "keep_freed_memory": False}})
    assert reports[0] == {"threads": 1}  # floor of the fractional CPU share Tune gave the trial
    assert all(set(r) == {"report"} for r in reports[1:])
    reported = [r["report"] for r in reports[1:]]
    assert sorted(r["seed"] for r in reported) == [0, 2, 4]
    expected = {seed: ray_adapter.result_payload(result) for seed, result in run_chunk(config, [4, 0, 2])}
    for report in reported:
        assert set(report) == {"cell_index", "seed", "run", "device", "node"}
        assert report["cell_index"] == 7 and report["device"] == "cpu" and report["node"] == platform.node()
        assert report["run"] == expected[report["seed"]]
        assert set(report["run"]) == FIELDS


def test_train_chunk_reports_seeds_as_they_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """A chunk where some seeds diverge on the first steps: those come first."""
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(ray_adapter.tune, "report", lambda payload: reports.append(payload["report"]))
    monkeypatch.setattr(ray_adapter, "PROGRESS_SECONDS", math.inf)
    config = small_config(lr=0.9, max_steps=20, task_params={"seq_len": 20, "hidden": 16, "eval_size": 64})
    seeds = [0, 1, 2, 3]
    ray_adapter.train_chunk({"chunk": {"train": config.to_dict(), "cell_index": 0, "seeds": seeds, "threads": 1,
                                       "keep_freed_memory": True}})
    steps = [r["run"]["steps_done"] for r in reports]
    assert sorted(r["seed"] for r in reports) == seeds
    assert steps == sorted(steps)
    assert "diverged" in {r["run"]["outcome"] for r in reports}, "the setting must make some seed diverge"
    assert steps[0] < steps[-1]


def test_train_chunk_reports_progress_between_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the throttle at 0 s, a progress entry follows every step: the steps made by the seeds
    still training (3 seeds × 1..6 steps, none finishing early), then one result per seed."""
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(ray_adapter.tune, "report", reports.append)
    monkeypatch.setattr(ray_adapter, "PROGRESS_SECONDS", 0.0)
    config = small_config(max_steps=6, record_every=2)
    ray_adapter.train_chunk({"chunk": {"train": config.to_dict(), "cell_index": 7, "seeds": [4, 0, 2],
                                       "threads": 1, "keep_freed_memory": False}})
    progress = [r["progress"] for r in reports if "progress" in r]
    assert progress == [{"cell_index": 7, "seeds": [4, 0, 2], "steps": 3 * step} for step in range(1, 7)]
    assert [set(r) for r in reports[len(progress):]] == [{"report"}] * 3
