"""The engine against theory: plain gradient descent on f(x) = ½ Σ λᵢ xᵢ² diverges exactly when
lr > 2/λmax, since the top coordinate is multiplied by (1 − lr·λmax) every step."""

from __future__ import annotations

import pytest

from trainers import ClippingConfig, ConvergenceConfig, TrainConfig
from trainers.loop import Outcome
from trainers.vectorized import run_chunk

LAMBDA_MAX = 100.0  # the task's default eigenvalues are 1, 10, 100
BOUNDARY = 2 / LAMBDA_MAX
SEEDS = list(range(16))


def gd(lr: float, clipping: ClippingConfig = ClippingConfig("none")) -> dict[int, Outcome]:
    config = TrainConfig(task="quadratic", lr=lr, clipping=clipping, max_steps=600,
                         convergence=ConvergenceConfig(eval_every=10))
    return {seed: result.outcome for seed, result in run_chunk(config, SEEDS)}


@pytest.mark.parametrize("margin", [1.02, 1.1, 2.0])
def test_every_seed_diverges_just_above_the_boundary(margin: float) -> None:
    assert set(gd(BOUNDARY * margin).values()) == {Outcome.DIVERGED}


@pytest.mark.parametrize("margin", [0.98, 0.9, 0.5])
def test_no_seed_diverges_just_below_it(margin: float) -> None:
    outcomes = gd(BOUNDARY * margin)
    assert Outcome.DIVERGED not in outcomes.values()
    assert set(outcomes) == set(SEEDS)


@pytest.mark.parametrize("margin", [1.02, 2.0, 10.0])
def test_clipped_gradient_descent_never_diverges(margin: float) -> None:
    outcomes = gd(BOUNDARY * margin, ClippingConfig("norm", {"max_norm": 1.0}))
    assert Outcome.DIVERGED not in outcomes.values()
