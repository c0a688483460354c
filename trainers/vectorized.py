"""Training a chunk of seeds as one batched model: the performance core.

The seeds' models are stacked along a leading seed dimension (torch.func.stack_module_state) and
run with torch.func.vmap over functional_call, so one step of S seeds is one set of batched kernels
instead of S small ones. What must stay per seed does:

- the loss and its gradient: the summed loss's gradient with respect to seed s's parameters is
  exactly seed s's own gradient, since no operation mixes seeds;
- clipping: every clipper decides per seed, with per-seed state (trainers/clipping/base.py);
- the optimizer: SGD, Adam and AdamW are element-wise, so stacked parameters get per-seed updates;
- divergence and convergence: a seed that diverges leaves the batch before the optimizer steps,
  one that converges right after its last update and evaluation (its parameters, optimizer state
  and clipper state are dropped), so it stops updating, its NaNs never reach anyone, and the rest
  of the chunk no longer pays for it. The divergence rules are the sequential loop's own
  (trainers/detection.py), applied on the host in float64.

Nothing runs per seed per step in Python: a task with counter-based data (DrawnDataTask) draws the
whole chunk's batch on the training device in one call, and ChunkRecorder folds a step of every
seed into their results with a few tensor operations. At thousands of seeds on a GPU either would
otherwise cost more than the training.

`run_chunk` is the entry point: vectorized when the task allows it, seed after seed otherwise. The
step order is the sequential loop's (trainers/loop.py), and a test holds the two together.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator, Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from trainers.chunk_recorder import ChunkRecorder
from trainers.clipping import ClipContext, Clipper, build_clipper
from trainers.config import DivergenceConfig, TrainConfig
from trainers.detection import converged, grad_ok, grad_trigger, loss_ok, loss_trigger
from trainers.loop import Outcome, RunRecorder, RunResult, StepRecord, is_eval_step, resolve_device, train
from trainers.optim import build_optimizer, lr_at, set_lr
from trainers.tasks import Task, build_task
from trainers.tasks.base import DrawnDataTask


def run_chunk(config: TrainConfig, seeds: Sequence[int], *, vectorize: bool | None = None,
              on_step: Callable[[int], None] | None = None) -> Iterator[tuple[int, RunResult]]:
    """Train `seeds` under `config`; yield (seed, result) as each seed finishes. `vectorize` None
    batches the seeds when there are several and the task allows it. `on_step(n)`, called after
    every step, tells how many steps the seeds still training have made in all: the chunk's
    progress between results, which otherwise come only as seeds finish."""
    task = build_task(config.task, config.task_params)
    if vectorize is None:
        vectorize = len(seeds) > 1 and task.vectorizable
    elif vectorize and not task.vectorizable:
        raise ValueError(f"task {task.name!r} cannot be vectorized; it trains seed after seed")
    if vectorize:
        yield from _VectorizedChunk(config, task, list(seeds), on_step).run()
    else:
        for seed in seeds:
            recorder = RunRecorder(config.record_every)
            for record in train(config, seed):
                recorder.add(record)
                if on_step is not None:
                    on_step(record.step + 1)
            yield seed, recorder.result()


def _stacked_batches(task: Task, seeds: list[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each seed's own data stream, stacked along a leading seed dimension."""
    streams = [task.batches(seed, batch_size) for seed in seeds]
    while True:
        xs, ys = zip(*(next(stream) for stream in streams))
        yield torch.stack(xs), torch.stack(ys)


class _VectorizedChunk:
    """One chunk of seeds trained as one batched model, built once and run once (`run`).

    It holds the seeds' stacked parameters, one optimizer and one clipper over them, and `alive`:
    the positions of the seeds still training. A seed that finishes leaves every one of these
    (`_keep`), so the batch shrinks as seeds diverge or converge."""

    def __init__(self, config: TrainConfig, task: Task, seeds: list[int],
                 on_step: Callable[[int], None] | None = None) -> None:
        self.config, self.task, self.seeds, self.on_step = config, task, seeds, on_step
        self.device = resolve_device(config.device)
        models = [task.build_model(seed) for seed in seeds]
        params, buffers = stack_module_state(models)
        self.names = list(params)
        self.params = [params[n].detach().to(self.device).requires_grad_() for n in self.names]
        self.buffers = {k: v.to(self.device) for k, v in buffers.items()}
        # A skeleton on the meta device: functional_call supplies every tensor.
        self.skeleton = copy.deepcopy(models[0]).to("meta")
        self.optimizer = build_optimizer(self.params, config.optimizer, config.lr)
        self.clipper: Clipper = build_clipper(config.clipping.method, config.clipping.params)
        self.clipper.bind(ClipContext(n_seeds=len(seeds), max_steps=config.max_steps, device=self.device,
                                      is_head=task.head_mask(self.names)))
        # A task with counter-based data draws every seed's batch at once on the device.
        self.drawn = isinstance(task, DrawnDataTask)
        self.seed_ids = torch.tensor(seeds, dtype=torch.int64, device=self.device)
        if self.drawn:
            self.eval_x, self.eval_y = task.draw(self.seed_ids, "eval", 0, task.params.eval_size)
        else:
            evals = [task.eval_batch(seed) for seed in seeds]
            self.eval_x = torch.stack([x for x, _ in evals]).to(self.device)
            self.eval_y = torch.stack([y for _, y in evals]).to(self.device)
        # `alive` holds the positions (in `seeds`) of the seeds still training, in batch order.
        self.alive = torch.arange(len(seeds))
        self.recorder = ChunkRecorder(len(seeds), config.record_every)
        self.initial_loss: torch.Tensor | None = None
        # A model may batch seeds itself (`forward_stacked(params, x)`, e.g. TanhRNN's recurrence
        # with hand-written BPTT), which beats vmap where vmap leaves many small autograd nodes.
        # Only a class that defines it itself (a subclass with another forward must opt in again)
        # and has no buffers, which forward_stacked does not take.
        model_type = type(models[0])
        self._forward_stacked = (model_type.forward_stacked
                                 if "forward_stacked" in model_type.__dict__ and not self.buffers else None)
        self._losses = vmap(self._loss_one)
        self._task_losses = vmap(task.loss)

    def _loss_one(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                  x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.task.loss(functional_call(self.skeleton, (params, buffers), (x,)), y)

    def _batch_losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params = dict(zip(self.names, self.params))
        if self._forward_stacked is not None:
            return self._task_losses(self._forward_stacked(params, x), y)
        return self._losses(params, self.buffers, x, y)

    def _batch(self, data: Iterator[tuple[torch.Tensor, torch.Tensor]] | None,
               step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of step `step` for the seeds still training, on the device."""
        if data is None:  # counter-based data: drawn for exactly these seeds, where they train
            return self.task.draw(self.seed_ids[self.alive.to(self.device)], "data", step, self.config.batch_size)
        x, y = next(data)  # every seed's stream advances, finished ones too: streams stay aligned
        return x[self.alive].to(self.device), y[self.alive].to(self.device)

    def run(self) -> Iterator[tuple[int, RunResult]]:
        config, rule = self.config, self.config.divergence
        target = config.convergence.target_loss or self.task.default_target_loss
        data = None if self.drawn else _stacked_batches(self.task, self.seeds, config.batch_size)
        for step in range(config.max_steps):
            set_lr(self.optimizer, lr_at(step, config.lr, config.optimizer.warmup_steps))
            alive = self.alive.to(self.device)
            losses = self._batch_losses(*self._batch(data, step))
            loss_values = losses.detach()
            if self.initial_loss is None:
                self.initial_loss = loss_values.clone()

            for p in self.params:
                p.grad = None
            losses.sum().backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            telemetry = self.clipper.clip(grads, [p.detach() for p in self.params])
            # One host transfer per step for everything the records need; the divergence rules
            # then run on the host in float64, as in the sequential loop.
            loss, initial, norm, clipped = torch.stack([
                loss_values.double(), self.initial_loss[alive].double(),
                telemetry.pre_norm.double(), telemetry.clipped.double()]).cpu()
            # Seeds that diverged leave before the update: they stop, and their NaNs go with them.
            loss_fine = loss_ok(loss, initial, rule)
            diverged = ~(loss_fine & grad_ok(norm, rule))
            if diverged.any():
                ids = self.alive[diverged]
                self.recorder.add(step, ids, loss[diverged], norm[diverged], clipped[diverged],
                                  has_norm=loss_fine[diverged])
                for seed, value, initial_value, n, c in zip(ids.tolist(), *(t[diverged].tolist() for t in (
                        loss, initial, norm, clipped))):
                    yield self._result(seed, self._diverged_record(step, value, initial_value, n, c, rule))
                self._keep(~diverged)
                if not len(self.alive):
                    return
                loss, norm, clipped = loss[~diverged], norm[~diverged], clipped[~diverged]
            self.optimizer.step()

            eval_loss = None
            if is_eval_step(step, config):
                with torch.no_grad():
                    alive = self.alive.to(self.device)
                    eval_loss = self._batch_losses(self.eval_x[alive], self.eval_y[alive]).double().cpu()
            self.recorder.add(step, self.alive, loss, norm, clipped, eval_loss=eval_loss)
            if eval_loss is not None and (done := converged(eval_loss, target)).any():
                for seed, value, n, c, e in zip(*(t[done].tolist() for t in (
                        self.alive, loss, norm, clipped, eval_loss))):
                    yield self._result(seed, StepRecord(step, value, n, bool(c), e, Outcome.CONVERGED))
                self._keep(~done)
                if not len(self.alive):
                    return
                loss, norm, clipped = loss[~done], norm[~done], clipped[~done]
            if self.on_step is not None:
                self.on_step(len(self.alive) * (step + 1))
        for seed, value, n, c in zip(*(t.tolist() for t in (self.alive, loss, norm, clipped))):
            yield self._result(seed, StepRecord(step, value, n, bool(c)))

    def _result(self, position: int, last: StepRecord) -> tuple[int, RunResult]:
        return self.seeds[position], self.recorder.result(position, last)

    @staticmethod
    def _diverged_record(step: int, loss: float, initial: float, norm: float, clipped: float,
                         rule: DivergenceConfig) -> StepRecord:
        """The last record of a seed that diverged, with the trigger the sequential loop's own rules name."""
        trigger = loss_trigger(loss, initial, rule)
        if trigger is not None:  # diverged before backward: in the sequential loop no norm exists
            return StepRecord(step, loss, outcome=Outcome.DIVERGED, trigger=trigger)
        return StepRecord(step, loss, norm, bool(clipped), outcome=Outcome.DIVERGED,
                          trigger=grad_trigger(norm, rule))

    def _keep(self, keep: torch.Tensor) -> None:
        """Keep only the seeds where `keep` (over the batch) is true: their parameters (with
        gradients), optimizer state and clipper state; the rest leave the batch for good."""
        before = len(self.alive)
        index = keep.nonzero().flatten()
        self.alive = self.alive[index]
        if not len(index):
            return
        on_device = index.to(self.device)
        old_params, self.params = self.params, []
        for p in old_params:
            q = p.detach()[on_device].requires_grad_()
            if p.grad is not None:
                q.grad = p.grad[on_device]
            self.params.append(q)
        # Optimizer state: per-seed tensors (momentum, Adam moments) lose the same rows; shared
        # scalars (Adam's step count) stay.
        state = self.optimizer.state
        new_state = {
            new: {k: v[on_device] if torch.is_tensor(v) and v.dim() > 0 and v.shape[0] == before else v
                  for k, v in state[old].items()}
            for old, new in zip(old_params, self.params) if old in state
        }
        self.optimizer.param_groups[0]["params"] = self.params
        state.clear()
        state.update(new_state)
        self.buffers = {k: v[on_device] for k, v in self.buffers.items()}
        self.clipper.keep_seeds(on_device)
