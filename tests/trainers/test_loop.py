"""The training loop and its summary (trainers/loop.py) on constructed cases."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Any

import pytest
import torch
from torch import nn

from tests.trainers.helpers import small_config, step_losses
from trainers import (
    TASKS,
    ClippingConfig,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    Outcome,
    Point,
    StepRecord,
    TrainConfig,
    Trigger,
    arm_label,
    run_seed,
    summarize,
    train,
)
from trainers.norm_histogram import bin_centre, norm_bin
from trainers.optim import build_optimizer, lr_at
from trainers.tasks.adding import AddingTask
from trainers.tasks.quadratic import QuadraticTask

NO_LIMITS = DivergenceConfig(loss_factor=math.inf, grad_norm_limit=math.inf)
TINY_NORM = ClippingConfig("norm", {"max_norm": 1.0e-6})


def _check_record_sequence(records: list[StepRecord]) -> None:
    """Steps are 0, 1, 2, ... and only the last record may carry an outcome."""
    assert [r.step for r in records] == list(range(len(records)))
    assert all(r.outcome is None and r.trigger is None for r in records[:-1])


# ---- divergence ----------------------------------------------------------------------------

@pytest.mark.parametrize("clipping", [ClippingConfig(), ClippingConfig("norm", {"max_norm": 1.0})],
                         ids=arm_label)
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
    # The loss exploded before backward: the norm kept is that of the update that caused it.
    records = list(train(config, 0))
    assert result.divergence_grad_norm == records[-2].grad_norm is not None


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


@pytest.mark.parametrize("clipping", [ClippingConfig(), TINY_NORM], ids=arm_label)
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
    assert result.max_grad_norm == rec.grad_norm == result.divergence_grad_norm


class NanGradAdding(AddingTask):
    """The adding task with a loss that is finite (sqrt(0) = 0) but whose gradient is NaN
    (d sqrt(u)/du = inf at u = 0, times 0)."""

    name = "adding_nan_grad"

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(0.0 * super().loss(output, target))


@pytest.mark.parametrize("clipping", [ClippingConfig(), ClippingConfig("norm", {"max_norm": 1.0})],
                         ids=arm_label)
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
    assert math.isnan(result.max_grad_norm) and math.isnan(result.divergence_grad_norm)
    assert result.norm_histogram == {}  # a NaN norm is a divergence, not a bin


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
    assert result.divergence_grad_norm is None
    # Every step's norm is counted, not only the recorded points.
    assert sum(result.norm_histogram.values()) == 6
    assert result.norm_histogram == dict(Counter(norm_bin(r.grad_norm) for r in records))


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


# ---- the optimizer and the learning-rate schedule (trainers/optim.py) ----------------------

@pytest.mark.parametrize(("base_lr", "expected"), [
    (1.0, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]),
    (2.0, [0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0]),
])
def test_lr_at_ramps_linearly_over_warmup_then_stays(base_lr: float, expected: list[float]) -> None:
    """Warm-up 4: lr/4, 2·lr/4, 3·lr/4, lr for updates 0-3, then lr."""
    assert [lr_at(step, base_lr, 4) for step in range(7)] == expected
    assert lr_at(10_000, base_lr, 4) == base_lr


def test_lr_at_with_an_inexact_base_lr() -> None:
    assert [lr_at(step, 0.1, 4) for step in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1],
                                                                      rel=1e-15)


@pytest.mark.parametrize("warmup", [0, 1])
def test_lr_at_without_warmup_is_constant(warmup: int) -> None:
    """Warm-up 0 (and 1: the first update's lr is 1/1 of lr) leaves every update at lr."""
    assert [lr_at(step, 0.3, warmup) for step in (0, 1, 2, 99, 10_000)] == [0.3] * 5


def _tensors() -> list[torch.Tensor]:
    return [torch.zeros(2, requires_grad=True), torch.zeros(3, 1, requires_grad=True)]


def test_build_optimizer_sgd() -> None:
    params = _tensors()
    opt = build_optimizer(params, OptimizerConfig(momentum=0.9, nesterov=True, weight_decay=1e-4), 0.05)
    assert type(opt) is torch.optim.SGD
    (group,) = opt.param_groups
    assert group["params"] == params
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.05, 0.9, True, 1e-4)
    plain = build_optimizer(_tensors(), OptimizerConfig(), 0.1).param_groups[0]
    assert (plain["lr"], plain["momentum"], plain["nesterov"], plain["weight_decay"]) == (0.1, 0.0, False, 0.0)


@pytest.mark.parametrize(("name", "cls", "default_decay"), [("adam", torch.optim.Adam, 0.0),
                                                            ("adamw", torch.optim.AdamW, 0.01)])
def test_build_optimizer_adam_and_adamw(name: str, cls: type, default_decay: float) -> None:
    params = _tensors()
    opt = build_optimizer(params, OptimizerConfig(name=name, beta1=0.8, beta2=0.95, eps=1e-6), 3e-4)
    assert type(opt) is cls  # AdamW subclasses Adam in recent torch: the exact type matters
    (group,) = opt.param_groups
    assert group["params"] == params
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (
        3e-4, (0.8, 0.95), 1e-6, default_decay)
    decayed = build_optimizer(_tensors(), OptimizerConfig(name=name, weight_decay=0.3), 1e-3).param_groups[0]
    assert decayed["weight_decay"] == 0.3
    assert (decayed["betas"], decayed["eps"]) == ((0.9, 0.999), 1e-8)


# ---- the optimizer in the loop, on the quadratic -------------------------------------------
# f(x) = ½ Σ λᵢ xᵢ² has gradient λ·x, so one update of each optimizer is a formula in x0.

def recording_quadratic(monkeypatch: pytest.MonkeyPatch, unused_parameter: bool = False) -> list[nn.Module]:
    """Register the quadratic task as "quadratic_recording", keeping every model it builds (the
    loop's model, after training, is the last one)."""
    built: list[nn.Module] = []

    class Recording(QuadraticTask):
        name = "quadratic_recording"

        def build_model(self, seed: int) -> nn.Module:
            model = super().build_model(seed)
            if unused_parameter:
                model.unused = nn.Parameter(torch.ones(2))  # never in the loss: it has no gradient
            built.append(model)
            return model

    monkeypatch.setitem(TASKS, Recording.name, Recording)
    return built


def quadratic_config(lr: float, optimizer: OptimizerConfig | None = None, max_steps: int = 1,
                     clipping: ClippingConfig | None = None) -> TrainConfig:
    return TrainConfig(task="quadratic_recording", lr=lr, optimizer=optimizer or OptimizerConfig(),
                       clipping=clipping or ClippingConfig(),
                       max_steps=max_steps, batch_size=1, record_every=1,
                       convergence=ConvergenceConfig(target_loss=1e-12))


QUADRATIC_SEED = 3
LAMBDAS = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)  # the default eigenvalues


def x0() -> torch.Tensor:
    """The seed's starting point, in float64."""
    return QuadraticTask().build_model(QUADRATIC_SEED).x.detach().double()


def trained_x(built: list[nn.Module], config: TrainConfig) -> tuple[torch.Tensor, list[StepRecord]]:
    records = list(train(config, QUADRATIC_SEED))
    assert len(records) == config.max_steps
    model = built[-1]
    assert torch.equal(model.lambdas.double(), LAMBDAS)
    return model.x.detach().double(), records


def _sgd(x: torch.Tensor, lr: float, decay: float = 0.0) -> torch.Tensor:
    return x - lr * (LAMBDAS * x + decay * x)


def _adam(x: torch.Tensor, lr: float, decoupled_decay: float = 0.0, eps: float = 1e-8) -> torch.Tensor:
    """Adam's first update is lr·m̂/(√v̂ + ε) with m̂ = g, √v̂ = |g| (bias corrections cancel)."""
    g = LAMBDAS * x
    return x * (1 - lr * decoupled_decay) - lr * g / (g.abs() + eps)


FIRST_UPDATES = [
    # (optimizer, lr, x1 as a function of x0 and the first update's lr)
    (OptimizerConfig(), 0.008, lambda x, lr: _sgd(x, lr)),
    (OptimizerConfig(weight_decay=0.5), 0.008, lambda x, lr: _sgd(x, lr, decay=0.5)),
    (OptimizerConfig(name="adam"), 0.1, lambda x, lr: _adam(x, lr)),
    (OptimizerConfig(name="adam", eps=1.0), 0.1, lambda x, lr: _adam(x, lr, eps=1.0)),
    (OptimizerConfig(name="adamw"), 0.1, lambda x, lr: _adam(x, lr, decoupled_decay=0.01)),
    (OptimizerConfig(name="adamw", weight_decay=0.5), 0.1, lambda x, lr: _adam(x, lr, decoupled_decay=0.5)),
]


@pytest.mark.parametrize("warmup", [0, 4])
@pytest.mark.parametrize(("optimizer", "lr", "update"), FIRST_UPDATES,
                         ids=["sgd", "sgd-decay", "adam", "adam-eps", "adamw-default-decay", "adamw-decay"])
def test_first_update_is_the_optimizers(monkeypatch: pytest.MonkeyPatch, optimizer: OptimizerConfig,
                                        lr: float, update: Any, warmup: int) -> None:
    """The loop's first update is exactly the configured optimizer's, with its hyperparameters and
    defaults (adamw decays by 0.01), at the warm-up's first lr (lr/4 with 4 warm-up steps)."""
    built = recording_quadratic(monkeypatch)
    config = quadratic_config(lr, dataclasses.replace(optimizer, warmup_steps=warmup))
    x1, _ = trained_x(built, config)
    lr_0 = lr / 4 if warmup else lr
    torch.testing.assert_close(x1, update(x0(), lr_0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("optimizer", "lr"), [(OptimizerConfig(), 0.008), (OptimizerConfig(name="adam"), 0.1)],
                         ids=["sgd", "adam"])
def test_warmup_makes_the_first_update_smaller(monkeypatch: pytest.MonkeyPatch, optimizer: OptimizerConfig,
                                               lr: float) -> None:
    """Same start, same gradient: with 4 warm-up steps the first update moves x a quarter as far
    (x1 = x0 − lr_0·λ·x0 for sgd, lr_0 = lr/4)."""
    built = recording_quadratic(monkeypatch)
    plain, plain_records = trained_x(built, quadratic_config(lr, optimizer))
    warm, warm_records = trained_x(built, quadratic_config(lr, dataclasses.replace(optimizer, warmup_steps=4)))
    start = x0()
    assert (warm_records[0].loss, warm_records[0].grad_norm) == (plain_records[0].loss, plain_records[0].grad_norm)
    plain_change, warm_change = (plain - start).abs(), (warm - start).abs()
    assert bool((plain_change > 0).all())
    assert bool((warm_change < plain_change).all())
    torch.testing.assert_close(warm_change, plain_change / 4, rtol=1e-4, atol=1e-7)
    # so the loss after the first update (evaluated on the last step) differs too
    assert warm_records[0].eval_loss != plain_records[0].eval_loss


def test_warmup_ramp_over_several_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Six sgd updates with warm-up 4 at lr 0.008: coordinate i is multiplied by (1 − lr_k·λᵢ) at
    update k, lr_k = 0.002, 0.004, 0.006, 0.008, 0.008, 0.008; and each step's loss is f(x_k)."""
    built = recording_quadratic(monkeypatch)
    x6, records = trained_x(built, quadratic_config(0.008, OptimizerConfig(warmup_steps=4), max_steps=6))
    x = x0()
    losses = []
    for lr_k in (0.002, 0.004, 0.006, 0.008, 0.008, 0.008):
        losses.append(float(0.5 * (LAMBDAS * x * x).sum()))
        x = x * (1 - lr_k * LAMBDAS)
    torch.testing.assert_close(x6, x, rtol=1e-5, atol=1e-6)
    assert [r.loss for r in records] == pytest.approx(losses, rel=1e-5)
    # without warm-up the same six updates all use 0.008: a different end point
    no_warmup, _ = trained_x(built, quadratic_config(0.008, max_steps=6))
    torch.testing.assert_close(no_warmup, x0() * (1 - 0.008 * LAMBDAS) ** 6, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(no_warmup, x6)


@pytest.mark.parametrize("norm_type", [2, "inf"])
def test_loop_clips_the_real_gradient(monkeypatch: pytest.MonkeyPatch, norm_type: Any) -> None:
    """The loop hands the clipper seed-batched views of the parameters' gradients, so clipping
    reaches the update: x1 = x0 − lr·(max_norm/‖λx0‖)·λx0 (‖·‖ the L2 norm, or the largest |entry|
    for norm_type "inf"). The recorded norm is the pre-clip L2 norm either way."""
    built = recording_quadratic(monkeypatch)
    clipping = ClippingConfig("norm", {"max_norm": 1.0, "norm_type": norm_type})
    x1, (record,) = trained_x(built, quadratic_config(0.008, clipping=clipping))
    g = LAMBDAS * x0()
    size = float(g.norm()) if norm_type == 2 else float(g.abs().max())
    assert size > 1.0, "the test needs a gradient over max_norm"
    torch.testing.assert_close(x1, x0() - 0.008 * g / size, rtol=1e-5, atol=1e-6)
    assert record.clipped is True
    assert record.grad_norm == pytest.approx(float(g.norm()), rel=1e-5)


def test_parameter_without_gradient_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A parameter outside the loss neither counts in the norm, nor gets a gradient, nor is updated
    (adamw's decoupled decay would shrink it if the loop handed it a zero gradient)."""
    built = recording_quadratic(monkeypatch, unused_parameter=True)
    clipping = ClippingConfig("norm", {"max_norm": 1.0e9})
    config = quadratic_config(0.1, OptimizerConfig(name="adamw", weight_decay=0.5), max_steps=3, clipping=clipping)
    records = list(train(config, QUADRATIC_SEED))
    model = built[-1]
    assert [name for name, _ in model.named_parameters()] == ["x", "unused"]
    assert model.unused.grad is None
    assert torch.equal(model.unused.detach(), torch.ones(2))
    assert records[0].grad_norm == pytest.approx(float((LAMBDAS * x0()).norm()), rel=1e-5)
    assert not any(r.clipped for r in records)


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
    steps_done counts the 4 updates made before it. The peak norm (9.0 at step 1, off the
    record_every grid) is kept as a point too, so a chart shows what the table's maximum says."""
    records = [rec(0, 2.0, 3.0), rec(1, 1.0, 9.0), rec(2, 1.5, 4.0), rec(3, 5.0, 2.0),
               rec(4, math.nan, None, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_LOSS)]
    result = summarize(records, 3)
    assert result.outcome is Outcome.DIVERGED
    assert result.trigger is Trigger.NONFINITE_LOSS
    assert result.steps_done == result.diverged_at_step == 4
    assert result.converged_at_step is None
    assert [p.step for p in result.points] == [0, 1, 3, 4]
    assert result.points[1] == Point(1, 1.0, 9.0, False)
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
        assert math.isnan(result.max_grad_norm) and math.isnan(result.divergence_grad_norm)
    else:
        assert result.max_grad_norm == bad == result.divergence_grad_norm
    # the non-finite norm is a divergence, not a bin
    assert result.norm_histogram == {norm_bin(5.0): 1, norm_bin(50.0): 1}
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


@pytest.mark.parametrize(("norm", "index"), [
    (1.0, 0), (0.999, -1), (10.0, 20), (1.5, 3),  # 20 · log10(1.5) = 3.52
    (1e-3, -60), (0.0, -600),  # a zero norm falls in the lowest bin, 1e-30
])
def test_norm_bins_are_twentieths_of_a_decade(norm: float, index: int) -> None:
    assert norm_bin(norm) == index
    # the centre of a bin is within 6% of every norm in it
    if norm > 0:
        assert abs(bin_centre(norm_bin(norm)) / norm - 1) < 0.06
    assert bin_centre(0) == pytest.approx(10 ** 0.025)
