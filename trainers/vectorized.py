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

`run_chunk` is the entry point: vectorized when the task allows it, seed after seed otherwise. The
step order is the sequential loop's (trainers/loop.py), and a test holds the two together.
"""

from __future__ import annotations

import copy
from typing import Iterator, Sequence

import torch
from torch.func import functional_call, stack_module_state, vmap

from trainers.allocator import keep_freed_memory
from trainers.clipping import ClipContext, Clipper, build_clipper
from trainers.config import DivergenceConfig, TrainConfig
from trainers.detection import grad_trigger, is_converged, loss_trigger
from trainers.loop import Outcome, RunRecorder, RunResult, StepRecord, is_eval_step, resolve_device, run_seed
from trainers.optim import build_optimizer, lr_at, set_lr
from trainers.tasks import Task, build_task


def run_chunk(config: TrainConfig, seeds: Sequence[int], *,
              vectorize: bool | None = None) -> Iterator[tuple[int, RunResult]]:
    """Train `seeds` under `config`; yield (seed, result) as each seed finishes. `vectorize` None
    batches the seeds when there are several and the task allows it."""
    task = build_task(config.task, config.task_params)
    if vectorize is None:
        vectorize = len(seeds) > 1 and task.vectorizable
    elif vectorize and not task.vectorizable:
        raise ValueError(f"task {task.name!r} cannot be vectorized; it trains seed after seed")
    if vectorize:
        yield from _VectorizedChunk(config, task, list(seeds)).run()
    else:
        for seed in seeds:
            yield seed, run_seed(config, seed)


def _stacked_batches(task: Task, seeds: list[int], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Each seed's own data stream, stacked along a leading seed dimension."""
    streams = [task.batches(seed, batch_size) for seed in seeds]
    while True:
        xs, ys = zip(*(next(stream) for stream in streams))
        yield torch.stack(xs), torch.stack(ys)


class _VectorizedChunk:
    def __init__(self, config: TrainConfig, task: Task, seeds: list[int]) -> None:
        self.config, self.task, self.seeds = config, task, seeds
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # big per-step tensors: reuse memory rather than page-fault (allocator.py)
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
        evals = [task.eval_batch(seed) for seed in seeds]
        self.eval_x = torch.stack([x for x, _ in evals]).to(self.device)
        self.eval_y = torch.stack([y for _, y in evals]).to(self.device)
        # `alive` indexes the original seeds still training, in the order of the batch dimension.
        self.alive = torch.arange(len(seeds))
        self.recorders = [RunRecorder(config.record_every) for _ in seeds]
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

    def run(self) -> Iterator[tuple[int, RunResult]]:
        config, rule = self.config, self.config.divergence
        target = config.convergence.target_loss or self.task.default_target_loss
        data = _stacked_batches(self.task, self.seeds, config.batch_size)
        for step in range(config.max_steps):
            set_lr(self.optimizer, lr_at(step, config.lr, config.optimizer.warmup_steps))
            x, y = next(data)  # every seed's stream advances, finished ones too: streams stay aligned
            alive = self.alive.to(self.device)
            losses = self._batch_losses(x[self.alive].to(self.device), y[self.alive].to(self.device))
            loss_values = losses.detach()
            if self.initial_loss is None:
                self.initial_loss = loss_values.clone()

            for p in self.params:
                p.grad = None
            losses.sum().backward()
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            telemetry = self.clipper.clip(grads, [p.detach() for p in self.params])
            # One host transfer per step for everything the records need; the divergence rules
            # then run on the host in float64, exactly as in the sequential loop.
            rows = torch.stack([loss_values.double(), self.initial_loss[alive].double(),
                                telemetry.pre_norm.double(), telemetry.clipped.double()]).cpu().T.tolist()
            records = [self._step_record(step, *row, rule) for row in rows]
            # Seeds that diverged leave before the update: they stop, and their NaNs go with them.
            yield from self._finish(records, record_all=False)
            records = [rec for rec in records if rec.outcome is None]
            if not records:
                return
            self.optimizer.step()

            if is_eval_step(step, config):
                with torch.no_grad():
                    alive = self.alive.to(self.device)
                    values = self._batch_losses(self.eval_x[alive], self.eval_y[alive]).double().cpu().tolist()
                records = [StepRecord(rec.step, rec.loss, rec.grad_norm, rec.clipped, value,
                                      Outcome.CONVERGED if is_converged(value, target) else None)
                           for rec, value in zip(records, values)]
            yield from self._finish(records, record_all=True)
            if not len(self.alive):
                return
        for original in self.alive.tolist():
            yield self.seeds[original], self.recorders[original].result()

    @staticmethod
    def _step_record(step: int, loss: float, initial: float, pre: float, clipped: float,
                     rule: DivergenceConfig) -> StepRecord:
        """The record of one seed's step, judged by the sequential loop's own rules."""
        trigger = loss_trigger(loss, initial, rule)
        if trigger is not None:  # diverged before backward: in the sequential loop no norm exists
            return StepRecord(step, loss, outcome=Outcome.DIVERGED, trigger=trigger)
        trigger = grad_trigger(pre, rule)
        if trigger is not None:
            return StepRecord(step, loss, pre, bool(clipped), outcome=Outcome.DIVERGED, trigger=trigger)
        return StepRecord(step, loss, pre, bool(clipped))

    def _finish(self, records: list[StepRecord], *, record_all: bool) -> Iterator[tuple[int, RunResult]]:
        """`records` holds this step's record of every seed in the batch, by position. Store the
        final ones (and, with `record_all`, the others too), yield the finished seeds' results, and
        drop those seeds from the batch."""
        alive = self.alive.tolist()
        done = [rec.outcome is not None for rec in records]
        for original, rec, is_done in zip(alive, records, done):
            if is_done or record_all:
                self.recorders[original].add(rec)
            if is_done:
                yield self.seeds[original], self.recorders[original].result()
        if any(done):
            self._keep([i for i, is_done in enumerate(done) if not is_done])

    def _keep(self, positions: list[int]) -> None:
        """Keep only the seeds at these batch positions: their parameters (with gradients),
        optimizer state and clipper state; the rest leave the batch for good."""
        before = len(self.alive)
        index = torch.tensor(positions, dtype=torch.long)
        self.alive = self.alive[index]
        if not positions:
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
