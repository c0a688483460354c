"""Divergence and convergence rules (trainers/detection.py) on hand-picked numbers."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.config import DivergenceConfig
from trainers.detection import (
    Trigger,
    converged,
    grad_ok,
    grad_trigger,
    is_converged,
    loss_ok,
    loss_trigger,
)

RULE = DivergenceConfig(loss_factor=100.0, grad_norm_limit=1.0e3)
INITIAL = 0.25  # 100 × 0.25 = 25.0 exactly, so the boundary below is exact in floating point


def test_trigger_values_are_the_stored_names() -> None:
    """The service stores `trigger.value`; renaming one would orphan stored results."""
    assert {t.value for t in Trigger} == {
        "nonfinite_loss", "nonfinite_grad", "loss_explosion", "grad_explosion"}


@pytest.mark.parametrize("loss", [math.nan, math.inf, -math.inf])
def test_nonfinite_loss_diverges(loss: float) -> None:
    assert loss_trigger(loss, INITIAL, RULE) is Trigger.NONFINITE_LOSS


@pytest.mark.parametrize("loss", [math.nextafter(25.0, math.inf), 25.01, 1.0e6])
def test_loss_above_factor_times_initial_is_an_explosion(loss: float) -> None:
    assert loss_trigger(loss, INITIAL, RULE) is Trigger.LOSS_EXPLOSION


@pytest.mark.parametrize("loss", [25.0, math.nextafter(25.0, 0.0), 1.0, INITIAL, 0.0])
def test_loss_at_or_under_factor_times_initial_is_not_diverged(loss: float) -> None:
    """Exactly loss_factor × initial is a spike the rule tolerates, not a divergence."""
    assert loss_trigger(loss, INITIAL, RULE) is None


def test_loss_factor_is_read_from_the_rule() -> None:
    """The same loss diverges under a tight factor and not under a loose one."""
    assert loss_trigger(3.0, 1.0, DivergenceConfig(loss_factor=2.0)) is Trigger.LOSS_EXPLOSION
    assert loss_trigger(3.0, 1.0, DivergenceConfig(loss_factor=4.0)) is None


@pytest.mark.parametrize("norm", [math.nan, math.inf, -math.inf])
def test_nonfinite_grad_norm_diverges(norm: float) -> None:
    assert grad_trigger(norm, RULE) is Trigger.NONFINITE_GRAD


@pytest.mark.parametrize("norm", [math.nextafter(1.0e3, math.inf), 1.0e4, 1.0e30])
def test_grad_norm_above_limit_is_an_explosion(norm: float) -> None:
    assert grad_trigger(norm, RULE) is Trigger.GRAD_EXPLOSION


@pytest.mark.parametrize("norm", [1.0e3, 999.0, 1.0, 0.0])
def test_grad_norm_at_or_under_limit_is_not_diverged(norm: float) -> None:
    assert grad_trigger(norm, RULE) is None


@pytest.mark.parametrize(("eval_loss", "target", "expected"), [
    (0.005, 0.01, True),
    (0.01, 0.01, True),  # at the target counts
    (math.nextafter(0.01, 1.0), 0.01, False),
    (0.5, 0.01, False),
    (0.0, 0.01, True),
])
def test_is_converged_at_or_under_target(eval_loss: float, target: float, expected: bool) -> None:
    assert is_converged(eval_loss, target) is expected


@pytest.mark.parametrize("eval_loss", [math.nan, math.inf, -math.inf])
def test_nonfinite_eval_loss_never_converges(eval_loss: float) -> None:
    """NaN compares false with everything; -inf is under any target but is not a real loss."""
    assert is_converged(eval_loss, 1.0e30) is False


EDGES = [math.nan, math.inf, -math.inf, 0.0, 1e-300, 24.999999999999996, 25.0, 25.000000000000004,
         999.9999999999999, 1000.0, 1000.0000000000001, 1e300]


def test_the_chunk_rules_agree_with_the_scalar_rules_at_every_edge() -> None:
    """The vectorized engine judges many seeds at once with loss_ok/grad_ok/converged: the same rule."""
    values = torch.tensor(EDGES, dtype=torch.float64)
    initial = torch.full_like(values, INITIAL)
    assert loss_ok(values, initial, RULE).tolist() == [loss_trigger(v, INITIAL, RULE) is None for v in EDGES]
    assert grad_ok(values, RULE).tolist() == [grad_trigger(v, RULE) is None for v in EDGES]
    assert converged(values, 25.0).tolist() == [is_converged(v, 25.0) for v in EDGES]
