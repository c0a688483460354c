"""The training loop of one seed, readable top to bottom, and the record of what it yielded.

`train` owns no side effects: it yields one StepRecord per step and stops at divergence or at the
target. Callers (the Ray adapter, the CLI, tests) decide what to keep; `RunRecorder` is the usual
one. This sequential loop is also the reference the vectorized engine is held to.

Order inside a step: learning rate (warm-up) -> forward -> divergence check on the loss ->
backward -> clip (recording the pre-clip norm) -> divergence check on that norm -> optimizer step
-> periodic evaluation on a fixed held-out batch.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Iterator

import torch

from trainers.clipping import ClipContext, build_clipper
from trainers.config import TrainConfig
from trainers.detection import Trigger, grad_trigger, is_converged, loss_trigger
from trainers.norm_histogram import norm_bin
from trainers.optim import build_optimizer, lr_at, set_lr
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


def is_eval_step(step: int, config: TrainConfig) -> bool:
    """Evaluate after every `eval_every`-th update and after the last one."""
    return (step + 1) % config.convergence.eval_every == 0 or step + 1 == config.max_steps


def train(config: TrainConfig, seed: int) -> Iterator[StepRecord]:
    """Train `seed` under `config`, yielding a record per step."""
    device = resolve_device(config.device)
    task = build_task(config.task, config.task_params)
    target_loss = config.convergence.target_loss or task.default_target_loss
    model = task.build_model(seed).to(device)
    names, params = zip(*model.named_parameters())
    opt = build_optimizer(params, config.optimizer, config.lr)
    clipper = build_clipper(config.clipping.method, config.clipping.params)
    clipper.bind(ClipContext(n_seeds=1, max_steps=config.max_steps, device=device,
                             is_head=task.head_mask(list(names))))
    eval_x, eval_y = (t.to(device) for t in task.eval_batch(seed))
    batches = task.batches(seed, config.batch_size)

    initial_loss: float | None = None
    for step in range(config.max_steps):
        set_lr(opt, lr_at(step, config.lr, config.optimizer.warmup_steps))
        x, y = (t.to(device) for t in next(batches))
        loss = task.loss(model(x), y)
        loss_value = float(loss.detach())
        if initial_loss is None:
            initial_loss = loss_value
        trigger = loss_trigger(loss_value, initial_loss, config.divergence)
        if trigger is not None:
            yield StepRecord(step, loss_value, outcome=Outcome.DIVERGED, trigger=trigger)
            return

        opt.zero_grad(set_to_none=False)
        loss.backward()
        # Clippers see gradients with a leading seed dimension; here it has size 1 (views, so
        # clipping in place clips the real gradients).
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        telemetry = clipper.clip([g.unsqueeze(0) for g in grads], [p.detach().unsqueeze(0) for p in params])
        pre_norm, clipped = float(telemetry.pre_norm[0]), bool(telemetry.clipped[0])
        trigger = grad_trigger(pre_norm, config.divergence)
        if trigger is not None:
            yield StepRecord(step, loss_value, pre_norm, clipped, outcome=Outcome.DIVERGED, trigger=trigger)
            return
        opt.step()

        eval_loss = None
        if is_eval_step(step, config):
            with torch.no_grad():
                eval_loss = float(task.loss(model(eval_x), eval_y))
        converged = eval_loss is not None and is_converged(eval_loss, target_loss)
        yield StepRecord(step, loss_value, pre_norm, clipped, eval_loss,
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
    # Finite pre-clip norms of every step, counted per bin (trainers.norm_histogram).
    norm_histogram: dict[int, int] = field(default_factory=dict)
    # A diverged run's last computed pre-clip norm: at the divergence step when it diverged on the
    # gradient, else the update just before the loss exploded (the step that threw it off the cliff).
    divergence_grad_norm: float | None = None
    points: list[Point] = field(default_factory=list)


class RunRecorder:
    """Folds one run's records, as they come, into its RunResult: keeps every `record_every`-th
    step as a point, plus the step of the largest pre-clip norm and the last step (the divergence
    or convergence step), so a chart of the points always shows the peak and the end."""

    def __init__(self, record_every: int) -> None:
        self.record_every = record_every
        self.points: list[Point] = []
        self.last: StepRecord | None = None
        self.initial: float | None = None
        self.min_loss: float | None = None
        self.max_norm: float | None = None
        self.final_eval: float | None = None
        self.clipped_steps = 0
        self.histogram: dict[int, int] = {}
        self.last_norm: float | None = None
        self.peak: Point | None = None  # the step of max_norm, kept whatever record_every says

    def add(self, rec: StepRecord) -> None:
        if self.initial is None:
            self.initial = rec.loss
        if math.isfinite(rec.loss):
            self.min_loss = rec.loss if self.min_loss is None else min(self.min_loss, rec.loss)
        if rec.grad_norm is not None and (self.max_norm is None or not rec.grad_norm <= self.max_norm):
            self.max_norm = rec.grad_norm  # a NaN norm is kept: it is the most extreme value seen
            self.peak = Point(rec.step, rec.loss, rec.grad_norm, rec.clipped)
        if rec.grad_norm is not None:
            self.last_norm = rec.grad_norm
            if math.isfinite(rec.grad_norm):
                index = norm_bin(rec.grad_norm)
                self.histogram[index] = self.histogram.get(index, 0) + 1
        if rec.eval_loss is not None:
            self.final_eval = rec.eval_loss
        self.clipped_steps += rec.clipped
        if rec.step % self.record_every == 0 or rec.outcome is not None:
            self.points.append(Point(rec.step, rec.loss, rec.grad_norm, rec.clipped))
        self.last = rec

    def result(self) -> RunResult:
        if self.last is None:
            raise ValueError("a run yields at least one step record (max_steps >= 1)")
        return final_result(self.last, with_point(self.points, self.peak), initial_loss=self.initial,
                            min_loss=self.min_loss,
                            final_eval_loss=self.final_eval, clipped_steps=self.clipped_steps,
                            max_grad_norm=self.max_norm, norm_histogram=dict(self.histogram),
                            last_norm=self.last_norm)


def with_point(points: list[Point], point: Point | None) -> list[Point]:
    """`points` (in step order) with `point` in its place, unless its step is already kept."""
    kept = list(points)
    if point is None or any(p.step == point.step for p in kept):
        return kept
    bisect.insort(kept, point, key=lambda p: p.step)
    return kept


def final_result(last: StepRecord, points: list[Point], *, last_norm: float | None, **aggregates: Any) -> RunResult:
    """A run's RunResult from its last step record, its kept points and its running aggregates
    (RunResult's fields from initial_loss to norm_histogram): the outcome, the step counts and the
    last point are derived here, for RunRecorder and the vectorized ChunkRecorder alike."""
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
        final_loss=last.loss,
        divergence_grad_norm=last_norm if outcome is Outcome.DIVERGED else None,
        points=points,
        **aggregates,
    )


def summarize(records: Iterable[StepRecord], record_every: int) -> RunResult:
    """Fold a whole run's records into its outcome and points."""
    recorder = RunRecorder(record_every)
    for rec in records:
        recorder.add(rec)
    return recorder.result()


def run_seed(config: TrainConfig, seed: int) -> RunResult:
    """Train one seed to its outcome, sequentially (the reference path)."""
    return summarize(train(config, seed), config.record_every)
