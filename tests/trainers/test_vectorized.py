"""The vectorized engine against the sequential reference: for every vectorizable task × every
clipping method, seed s trained in a chunk follows seed s trained alone (float32 tolerance) for
the first 50 steps, and both reach the same outcome."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

from trainers import ClippingConfig, ConvergenceConfig, OptimizerConfig, TrainConfig, run_seed
from trainers.clipping import CLIPPERS
from trainers.loop import Outcome
from trainers.tasks import TASKS
from trainers.vectorized import run_chunk

# Small versions of the built-in tasks, with learning rates at which some seeds clip hard and (for
# the RNN tasks) some diverge, so masking and dropping finished seeds are exercised too.
SMALL: dict[str, tuple[dict[str, Any], float, OptimizerConfig]] = {
    "adding": ({"seq_len": 20, "hidden": 16, "eval_size": 64}, 0.5, OptimizerConfig()),
    "temporal_order": ({"seq_len": 20, "hidden": 16, "eval_size": 64}, 0.5, OptimizerConfig(momentum=0.5)),
    "deep_mlp": ({"depth": 4, "width": 16, "in_dim": 8, "eval_size": 64}, 0.05, OptimizerConfig()),
    "tiny_transformer": ({"seq_len": 8, "vocab": 8, "d_model": 16, "n_layers": 1, "n_heads": 2, "eval_size": 32},
                         0.003, OptimizerConfig(name="adamw")),
    "quadratic": ({}, 0.0199, OptimizerConfig()),
}
SEEDS = [0, 1, 2, 3]
STEPS = 50


def config(task: str, method: str) -> TrainConfig:
    params, lr, optimizer = SMALL.get(task, ({}, 0.01, OptimizerConfig()))
    return TrainConfig(task=task, lr=lr, task_params=params, optimizer=optimizer,
                       clipping=ClippingConfig(method, {}), max_steps=STEPS, batch_size=8, record_every=1,
                       # an evaluation every 10 steps exercises convergence bookkeeping without
                       # converging anyone early by accident
                       convergence=ConvergenceConfig(target_loss=1e-9, eval_every=10))


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if not (math.isfinite(a) and math.isfinite(b)):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return math.isclose(a, b, rel_tol=2e-3, abs_tol=1e-5)


@pytest.mark.parametrize("method", sorted(CLIPPERS))
@pytest.mark.parametrize("task", sorted(name for name, cls in TASKS.items() if cls.vectorizable))
def test_a_seed_in_a_chunk_follows_its_sequential_run(task: str, method: str) -> None:
    cfg = config(task, method)
    chunk = dict(run_chunk(cfg, SEEDS, vectorize=True))
    assert sorted(chunk) == SEEDS
    for seed in SEEDS:
        alone, together = run_seed(cfg, seed), chunk[seed]
        assert (together.outcome, together.trigger, together.steps_done) == \
            (alone.outcome, alone.trigger, alone.steps_done), f"seed {seed}"
        assert len(together.points) == len(alone.points)
        for a, b in zip(alone.points, together.points):
            assert a.step == b.step and a.clipped == b.clipped, (seed, a, b)
            assert close(a.loss, b.loss) and close(a.grad_norm, b.grad_norm), (seed, a, b)
        assert together.clipped_steps == alone.clipped_steps
        for field in ("initial_loss", "final_loss", "min_loss", "final_eval_loss", "max_grad_norm",
                      "divergence_grad_norm"):
            assert close(getattr(together, field), getattr(alone, field)), (seed, field)
        assert same_bins(together.norm_histogram, alone.norm_histogram), seed


def same_bins(a: dict[int, int], b: dict[int, int]) -> bool:
    """The same norms counted, in the same bins up to float32 noise moving one across a bin edge."""
    def spread(h: dict[int, int]) -> list[int]:
        return sorted(i for i, n in h.items() for _ in range(n))
    return len(spread(a)) == len(spread(b)) and all(abs(x - y) <= 1 for x, y in zip(spread(a), spread(b)))


def diverging_adding() -> TrainConfig:
    """Adding at T=50 and lr 0.4: seeds 2 and 3 diverge within a few steps, 0 and 1 train on."""
    return TrainConfig(task="adding", lr=0.4, task_params={"seq_len": 50}, max_steps=30, batch_size=8,
                       record_every=1)


def test_diverged_seeds_leave_and_never_touch_the_others() -> None:
    """The survivors' results are exactly those of a chunk of the survivors alone."""
    cfg = diverging_adding()
    everyone = dict(run_chunk(cfg, SEEDS, vectorize=True))
    diverged = [s for s, r in everyone.items() if r.outcome is Outcome.DIVERGED]
    survivors = [s for s in SEEDS if s not in diverged]
    assert diverged and survivors, "the setting must split the seeds for this test to mean anything"
    alone = dict(run_chunk(cfg, survivors, vectorize=True))
    for seed in survivors:
        assert [p.loss for p in alone[seed].points] == pytest.approx([p.loss for p in everyone[seed].points], rel=1e-5)


def test_results_come_as_seeds_finish() -> None:
    """A seed that diverges early is reported before the ones still training."""
    order = [seed for seed, _ in run_chunk(diverging_adding(), SEEDS, vectorize=True)]
    results = dict(run_chunk(diverging_adding(), SEEDS, vectorize=True))
    assert sorted(order[:2]) == [2, 3]
    steps = [results[s].steps_done for s in order]
    assert steps == sorted(steps)


def test_a_task_that_cannot_vectorize_trains_seed_after_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TASKS["quadratic"], "vectorizable", False)
    cfg = config("quadratic", "norm")
    assert [s for s, _ in run_chunk(cfg, SEEDS)] == SEEDS
    with pytest.raises(ValueError, match="cannot be vectorized"):
        list(run_chunk(cfg, SEEDS, vectorize=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_chunk_on_the_gpu_matches_the_cpu() -> None:
    cfg = config("adding", "norm")
    cpu = dict(run_chunk(cfg, SEEDS, vectorize=True))
    gpu = dict(run_chunk(cfg.with_device("cuda"), SEEDS, vectorize=True))
    for seed in SEEDS:
        assert gpu[seed].outcome == cpu[seed].outcome
        for a, b in zip(cpu[seed].points[:50], gpu[seed].points[:50]):
            assert close(a.loss, b.loss)


@pytest.mark.parametrize("vectorize", [True, False])
def test_on_step_counts_the_steps_of_the_seeds_still_training(vectorize: bool) -> None:
    """A chunk where seeds diverge early: after each step, on_step gets the steps made by the
    seeds still training (vectorized: all of them at once; seed after seed: the one training)."""
    chunk_config = dataclasses.replace(config("adding", "none"), lr=3.0)
    calls: list[int] = []
    results = dict(run_chunk(chunk_config, SEEDS, vectorize=vectorize, on_step=calls.append))
    if vectorize:
        # Step k (1-based): every seed alive after it has made k steps.
        alive = [sum(r.steps_done >= k for r in results.values()) for k in range(1, STEPS + 1)]
        expected = [n * k for k, n in enumerate(alive, start=1) if n]
        assert calls == expected
    else:
        # One seed at a time, 1, 2, ... up to its last step record (a diverged seed's included).
        per_seed = [r.steps_done + (r.outcome is Outcome.DIVERGED) for r in (results[s] for s in SEEDS)]
        assert calls == [k for n in per_seed for k in range(1, n + 1)]
    assert any(r.outcome is Outcome.DIVERGED for r in results.values()), "the setting must make a seed diverge"
