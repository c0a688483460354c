"""The training loop and its summary (trainers/loop.py) on constructed cases."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from trainers import (
    TASKS,
    ClippingConfig,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    Outcome,
    Point,
    StepRecord,
    Trigger,
    run_seed,
    summarize,
    train,
)
from trainers.tasks.adding import AddingTask

from tests.trainers.helpers import small_config, step_losses

NO_LIMITS = DivergenceConfig(loss_factor=math.inf, grad_norm_limit=math.inf)
TINY_NORM = ClippingConfig("norm", {"max_norm": 1.0e-6})


def _check_record_sequence(records: list[StepRecord]) -> None:
    """Steps are 0, 1, 2, ... and only the last record may carry an outcome."""
    assert [r.step for r in records] == list(range(len(records)))
    assert all(r.outcome is None and r.trigger is None for r in records[:-1])


# ---- divergence ----------------------------------------------------------------------------

@pytest.mark.parametrize("clipping", [ClippingConfig(), ClippingConfig("norm", {"max_norm": 1.0})],
                         ids=lambda c: c.label)
def test_huge_lr_diverges_on_loss_explosion(clipping: ClippingConfig) -> None:
    """lr 1000 throws the loss far above 100 × its initial value after one update, with or without
    clipping (a clipped step of length lr × 1 is still huge)."""
    config = small_config(lr=1.0e3, max_steps=50, clipping=clipping)
    records = list(train(config, 0))
    _check_record_sequence(records)
    last = records[-1]
    assert len(records) < config.max_steps  # stopped at divergence, not at the budget
    assert last.outcome is Outcome.DIVERGED and last.trigger is Trigger.LOSS_EXPLOSION
    assert last.grad_norm is None  # diverged on the loss, before backward
    assert last.loss > config.divergence.loss_factor * records[0].loss

    result = run_seed(config, 0)
    assert result.outcome is Outcome.DIVERGED
    assert result.trigger is Trigger.LOSS_EXPLOSION
    assert result.diverged_at_step == last.step >= 1
    assert result.steps_done == result.diverged_at_step
    assert result.converged_at_step is None
    assert result.points[-1].step == result.diverged_at_step
    assert result.final_loss == last.loss


def test_overflowing_loss_diverges_as_nonfinite() -> None:
    """With the explosion rules switched off, lr 1e20 overflows the loss to inf."""
    config = small_config(lr=1.0e20, max_steps=50, divergence=NO_LIMITS)
    records = list(train(config, 0))
    _check_record_sequence(records)
    assert records[-1].trigger is Trigger.NONFINITE_LOSS
    assert not math.isfinite(records[-1].loss)
    result = run_seed(config, 0)
    assert result.outcome is Outcome.DIVERGED and result.trigger is Trigger.NONFINITE_LOSS
    assert result.steps_done == result.diverged_at_step == records[-1].step
    assert math.isfinite(result.min_loss)


@pytest.mark.parametrize("clipping", [ClippingConfig(), TINY_NORM], ids=lambda c: c.label)
def test_grad_norm_over_limit_diverges_even_when_clipped(clipping: ClippingConfig) -> None:
    """Detection reads the pre-clip norm: clipping to 1e-6 does not hide a norm over the limit."""
    config = small_config(clipping=clipping, divergence=DivergenceConfig(grad_norm_limit=1.0e-3))
    records = list(train(config, 0))
    assert len(records) == 1
    (rec,) = records
    assert rec.outcome is Outcome.DIVERGED and rec.trigger is Trigger.GRAD_EXPLOSION
    assert rec.grad_norm is not None and rec.grad_norm > 1.0e-3
    assert rec.clipped is (clipping.method == "norm")
    result = run_seed(config, 0)
    assert (result.steps_done, result.diverged_at_step) == (0, 0)
    assert result.max_grad_norm == rec.grad_norm


class NanGradAdding(AddingTask):
    """The adding task with a loss that is finite (sqrt(0) = 0) but whose gradient is NaN
    (d sqrt(u)/du = inf at u = 0, times 0)."""

    name = "adding_nan_grad"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(0.0 * super().loss(output, target))


@pytest.mark.parametrize("clipping", [ClippingConfig(), ClippingConfig("norm", {"max_norm": 1.0})],
                         ids=lambda c: c.label)
def test_nan_gradient_diverges_as_nonfinite_grad(monkeypatch: pytest.MonkeyPatch,
                                                  clipping: ClippingConfig) -> None:
    monkeypatch.setitem(TASKS, NanGradAdding.name, NanGradAdding)
    config = small_config(task=NanGradAdding.name, clipping=clipping)
    (rec,) = list(train(config, 0))
    assert rec.loss == 0.0
    assert rec.trigger is Trigger.NONFINITE_GRAD and math.isnan(rec.grad_norm)
    result = run_seed(config, 0)
    assert result.outcome is Outcome.DIVERGED and result.trigger is Trigger.NONFINITE_GRAD
    assert (result.steps_done, result.diverged_at_step) == (0, 0)
    assert math.isnan(result.max_grad_norm)


# ---- budget and convergence ----------------------------------------------------------------

def test_exhausted_budget_is_unconverged() -> None:
    config = small_config(lr=1.0e-3, max_steps=6, record_every=4)
    records = list(train(config, 0))
    _check_record_sequence(records)
    assert len(records) == 6 and records[-1].outcome is None
    # eval_every is 50, so only the final step is evaluated.
    assert [r.eval_loss is not None for r in records] == [False] * 5 + [True]

    result = run_seed(config, 0)
    assert result.outcome is Outcome.UNCONVERGED
    assert result.steps_done == config.max_steps
    assert result.trigger is None
    assert result.diverged_at_step is None and result.converged_at_step is None
    assert [p.step for p in result.points] == [0, 4, 5]
    assert result.final_eval_loss == records[-1].eval_loss > 0.01
    assert result.initial_loss == records[0].loss
    assert result.final_loss == records[-1].loss
    assert result.min_loss == min(r.loss for r in records)
    assert result.max_grad_norm == max(r.grad_norm for r in records)
    assert result.clipped_steps == 0


def test_eval_every_and_the_final_step_are_evaluated() -> None:
    config = small_config(max_steps=5, convergence=ConvergenceConfig(eval_every=2))
    evaluated = [r.step for r in train(config, 0) if r.eval_loss is not None]
    assert evaluated == [1, 3, 4]


def test_first_evaluation_under_target_converges() -> None:
    """Target 10 is far above any adding-task MSE: the first evaluation (after 1 update) converges."""
    config = small_config(max_steps=20, convergence=ConvergenceConfig(target_loss=10.0, eval_every=1))
    records = list(train(config, 0))
    assert len(records) == 1
    assert records[0].outcome is Outcome.CONVERGED and records[0].eval_loss <= 10.0
    result = run_seed(config, 0)
    assert result.outcome is Outcome.CONVERGED
    assert result.converged_at_step == 1 and result.steps_done == 1
    assert result.trigger is None and result.diverged_at_step is None
    assert result.final_eval_loss == records[0].eval_loss
    assert [p.step for p in result.points] == [0]


def test_converged_at_step_counts_updates() -> None:
    """With eval_every 3 the first evaluation follows step 2, i.e. 3 updates."""
    config = small_config(max_steps=20, convergence=ConvergenceConfig(target_loss=10.0, eval_every=3))
    result = run_seed(config, 0)
    assert result.outcome is Outcome.CONVERGED
    assert result.converged_at_step == result.steps_done == 3
    assert [p.step for p in result.points] == [0, 1, 2]


def test_default_target_is_the_tasks() -> None:
    """Without target_loss the task's 0.01 applies, which 5 steps at lr 1e-3 do not reach."""
    config = small_config(lr=1.0e-3, convergence=ConvergenceConfig(eval_every=1))
    result = run_seed(config, 0)
    assert result.outcome is Outcome.UNCONVERGED
    assert result.final_eval_loss > AddingTask.default_target_loss


def test_every_step_clipped_is_counted() -> None:
    config = small_config(clipping=TINY_NORM)
    result = run_seed(config, 0)
    assert result.outcome is Outcome.UNCONVERGED
    assert result.clipped_steps == config.max_steps
    assert all(p.clipped for p in result.points)
    assert run_seed(small_config(), 0).clipped_steps == 0


def test_momentum_is_used() -> None:
    """SGD momentum's first update equals plain SGD's (its buffer starts at the gradient), later
    ones differ: the losses agree on steps 0 and 1 and not after."""
    plain = step_losses(small_config(lr=0.1), 0)
    heavy = step_losses(small_config(lr=0.1, optimizer=OptimizerConfig(momentum=0.9)), 0)
    assert heavy[:2] == plain[:2]
    assert heavy[2] != plain[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_requested_without_cuda_is_refused() -> None:
    with pytest.raises(RuntimeError, match="use device 'auto' or 'cpu'"):
        run_seed(small_config(device="cuda"), 0)


def test_auto_device_trains() -> None:
    assert run_seed(small_config(device="auto"), 0).steps_done == 5


# ---- summarize on hand-built records -------------------------------------------------------

def rec(step: int, loss: float = 1.0, grad_norm: float | None = 1.0, **kw: Any) -> StepRecord:
    return StepRecord(step, loss, grad_norm, **kw)


def test_summarize_keeps_every_nth_step_and_the_last() -> None:
    records = [rec(s, loss=10.0 - s, grad_norm=float(s)) for s in range(8)]
    result = summarize(records, 3)
    assert result.outcome is Outcome.UNCONVERGED
    assert result.steps_done == 8
    assert [p.step for p in result.points] == [0, 3, 6, 7]
    assert result.points[1] == Point(3, 7.0, 3.0, False)
    assert (result.initial_loss, result.final_loss, result.min_loss) == (10.0, 3.0, 3.0)
    assert result.max_grad_norm == 7.0


def test_summarize_does_not_repeat_a_last_step_on_the_grid() -> None:
    result = summarize([rec(s) for s in range(7)], 3)
    assert [p.step for p in result.points] == [0, 3, 6]


@pytest.mark.parametrize("record_every", [1, 2, 100])
def test_summarize_record_every(record_every: int) -> None:
    result = summarize([rec(s) for s in range(10)], record_every)
    expected = sorted({*range(0, 10, record_every), 9})
    assert [p.step for p in result.points] == expected


def test_summarize_single_step() -> None:
    result = summarize([rec(0, loss=0.5)], 10)
    assert result.steps_done == 1
    assert result.points == [Point(0, 0.5, 1.0, False)]


def test_summarize_nan_loss_divergence() -> None:
    """A NaN loss ends the run at step 4: kept as the final point, excluded from min_loss, and
    steps_done counts the 4 updates made before it."""
    records = [rec(0, 2.0, 3.0), rec(1, 1.0, 9.0), rec(2, 1.5, 4.0), rec(3, 5.0, 2.0),
               rec(4, math.nan, None, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_LOSS)]
    result = summarize(records, 3)
    assert result.outcome is Outcome.DIVERGED
    assert result.trigger is Trigger.NONFINITE_LOSS
    assert result.steps_done == result.diverged_at_step == 4
    assert result.converged_at_step is None
    assert [p.step for p in result.points] == [0, 3, 4]
    assert math.isnan(result.points[-1].loss) and result.points[-1].grad_norm is None
    assert math.isnan(result.final_loss)
    assert result.min_loss == 1.0
    assert result.max_grad_norm == 9.0


def test_summarize_divergence_on_grid_step_is_kept_once() -> None:
    records = [rec(0), rec(1), rec(2),
               rec(3, 1.0, 1.0e12, outcome=Outcome.DIVERGED, trigger=Trigger.GRAD_EXPLOSION)]
    result = summarize(records, 3)
    assert [p.step for p in result.points] == [0, 3]
    assert result.max_grad_norm == 1.0e12


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_summarize_nonfinite_grad_norm_is_the_max(bad: float) -> None:
    records = [rec(0, grad_norm=5.0), rec(1, grad_norm=50.0),
               rec(2, grad_norm=bad, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_GRAD)]
    result = summarize(records, 10)
    assert result.max_grad_norm is not None
    if math.isnan(bad):
        assert math.isnan(result.max_grad_norm)
    else:
        assert result.max_grad_norm == bad
    assert (result.steps_done, result.diverged_at_step) == (2, 2)


def test_summarize_all_nonfinite_has_no_min_and_no_norm() -> None:
    records = [rec(0, math.nan, None, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_LOSS)]
    result = summarize(records, 10)
    assert result.min_loss is None and result.max_grad_norm is None
    assert (result.steps_done, result.diverged_at_step) == (0, 0)


def test_summarize_convergence() -> None:
    records = [rec(0), rec(1), rec(2, eval_loss=0.5), rec(3), rec(4),
               rec(5, eval_loss=0.005, outcome=Outcome.CONVERGED)]
    result = summarize(records, 4)
    assert result.outcome is Outcome.CONVERGED
    assert result.converged_at_step == result.steps_done == 6
    assert result.diverged_at_step is None and result.trigger is None
    assert result.final_eval_loss == 0.005
    assert [p.step for p in result.points] == [0, 4, 5]


def test_summarize_counts_clipped_steps() -> None:
    flags = [True, False, True, True, False]
    result = summarize([rec(s, clipped=c) for s, c in enumerate(flags)], 2)
    assert result.clipped_steps == 3
    assert [p.clipped for p in result.points] == [True, True, False]


def test_summarize_empty_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        summarize([], 10)
