"""The training loop of one seed, readable top to bottom, and the summary of what it yielded.

`train` owns no side effects: it yields one StepRecord per step and stops at divergence or at the
target. Callers (the Ray adapter, the CLI, tests) decide what to keep; `summarize` is the usual one.

Order inside a step: forward -> divergence check on the loss -> backward -> clip (recording the
pre-clip norm) -> divergence check on that norm -> optimizer step -> periodic evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterable, Iterator

import torch

from trainers.clipping import build_clipper
from trainers.config import TrainConfig
from trainers.detection import Trigger, grad_trigger, is_converged, loss_trigger
from trainers.tasks import build_task


class Outcome(str, Enum):
    """How a training ended, as far as the trainer knows (the service adds failed and cancelled)."""

    CONVERGED = "converged"
    DIVERGED = "diverged"
    UNCONVERGED = "unconverged"


@dataclass(frozen=True)
class StepRecord:
    """What happened at step `step` (the number of updates made before it).

    `grad_norm` is the pre-clip norm, None when the run diverged on the loss before backward.
    `eval_loss` is set on evaluation steps. `outcome` is set on the last record of a run that
    diverged or converged.
    """

    step: int
    loss: float
    grad_norm: float | None = None
    clipped: bool = False
    eval_loss: float | None = None
    outcome: Outcome | None = None
    trigger: Trigger | None = None


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device 'cuda' was requested but this node has no usable CUDA device "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda}); "
            "use device 'auto' or 'cpu', or run the trial on a GPU node"
        )
    return torch.device(requested)


def train(config: TrainConfig, seed: int) -> Iterator[StepRecord]:
    """Train `seed` under `config`, yielding a record per step."""
    device = resolve_device(config.device)
    task = build_task(config.task, config.task_params)
    target_loss = config.convergence.target_loss or task.default_target_loss
    model = task.build_model(seed).to(device)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.optimizer.momentum,
                          nesterov=config.optimizer.nesterov)
    clipper = build_clipper(config.clipping.method, config.clipping.params)
    eval_x, eval_y = (t.to(device) for t in task.eval_batch(seed))
    batches = task.batches(seed, config.batch_size)

    initial_loss: float | None = None
    for step in range(config.max_steps):
        x, y = (t.to(device) for t in next(batches))
        loss = task.loss(model(x), y)
        loss_value = float(loss.detach())
        if initial_loss is None:
            initial_loss = loss_value
        trigger = loss_trigger(loss_value, initial_loss, config.divergence)
        if trigger is not None:
            yield StepRecord(step, loss_value, outcome=Outcome.DIVERGED, trigger=trigger)
            return

        opt.zero_grad(set_to_none=True)
        loss.backward()
        telemetry = clipper.clip(params)
        trigger = grad_trigger(telemetry.pre_norm, config.divergence)
        if trigger is not None:
            yield StepRecord(step, loss_value, telemetry.pre_norm, telemetry.clipped,
                             outcome=Outcome.DIVERGED, trigger=trigger)
            return
        opt.step()

        eval_loss = None
        if (step + 1) % config.convergence.eval_every == 0 or step + 1 == config.max_steps:
            with torch.no_grad():
                eval_loss = float(task.loss(model(eval_x), eval_y))
        converged = eval_loss is not None and is_converged(eval_loss, target_loss)
        yield StepRecord(step, loss_value, telemetry.pre_norm, telemetry.clipped, eval_loss,
                         outcome=Outcome.CONVERGED if converged else None)
        if converged:
            return


@dataclass(frozen=True)
class Point:
    """One stored sample of a run's series."""

    step: int
    loss: float
    grad_norm: float | None
    clipped: bool


@dataclass
class RunResult:
    """The outcome of one seed's training and the downsampled series behind it."""

    outcome: Outcome
    steps_done: int
    trigger: Trigger | None = None
    diverged_at_step: int | None = None
    converged_at_step: int | None = None
    initial_loss: float | None = None
    final_loss: float | None = None
    min_loss: float | None = None
    final_eval_loss: float | None = None
    clipped_steps: int = 0
    max_grad_norm: float | None = None
    points: list[Point] = field(default_factory=list)


def summarize(records: Iterable[StepRecord], record_every: int) -> RunResult:
    """Fold a run's records into its outcome, keeping every `record_every`-th step as a point, plus
    the first and the last step (the divergence or convergence step is always kept)."""
    points: list[Point] = []
    last: StepRecord | None = None
    initial = min_loss = max_norm = final_eval = None
    clipped_steps = 0
    for rec in records:
        if initial is None:
            initial = rec.loss
        if math.isfinite(rec.loss):
            min_loss = rec.loss if min_loss is None else min(min_loss, rec.loss)
        if rec.grad_norm is not None and (max_norm is None or not rec.grad_norm <= max_norm):
            max_norm = rec.grad_norm  # a NaN norm is kept: it is the most extreme value seen
        if rec.eval_loss is not None:
            final_eval = rec.eval_loss
        clipped_steps += rec.clipped
        if rec.step % record_every == 0 or rec.outcome is not None:
            points.append(Point(rec.step, rec.loss, rec.grad_norm, rec.clipped))
        last = rec
    if last is None:
        raise ValueError("a run yields at least one step record (max_steps >= 1)")
    if not points or points[-1].step != last.step:
        points.append(Point(last.step, last.loss, last.grad_norm, last.clipped))

    outcome = last.outcome or Outcome.UNCONVERGED
    updates = last.step + (0 if outcome is Outcome.DIVERGED else 1)
    return RunResult(
        outcome=outcome,
        steps_done=updates,
        trigger=last.trigger,
        diverged_at_step=last.step if outcome is Outcome.DIVERGED else None,
        converged_at_step=updates if outcome is Outcome.CONVERGED else None,
        initial_loss=initial,
        final_loss=last.loss,
        min_loss=min_loss,
        final_eval_loss=final_eval,
        clipped_steps=clipped_steps,
        max_grad_norm=max_norm,
        points=points,
    )


def run_seed(config: TrainConfig, seed: int) -> RunResult:
    """Train one seed to its outcome."""
    return summarize(train(config, seed), config.record_every)
