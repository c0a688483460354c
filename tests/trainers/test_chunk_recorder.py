"""ChunkRecorder folds a chunk of seeds' steps into the same RunResults as RunRecorder does per seed."""

from __future__ import annotations

import dataclasses
import math

import torch

from trainers.chunk_recorder import ChunkRecorder
from trainers.detection import Trigger
from trainers.loop import Outcome, RunRecorder, RunResult, StepRecord

NAN, INF = float("nan"), float("inf")

# Per seed: (loss, norm, clipped) of each step; the last step ends the run as `ENDINGS` says.
STEPS = {
    0: [(1.0, 0.5, 0), (0.9, 3.0, 1), (INF, 2.0, 1), (0.7, 1e45, 1), (0.6, 0.0, 0), (0.5, 2.0, 1)],
    1: [(2.0, 1.0, 0), (1.5, NAN, 1)],
    2: [(3.0, 0.1, 0), (2.0, 0.2, 0), (NAN, None, 0)],
    3: [(NAN, None, 0)],
    4: [(1.0, 0.5, 0), (0.5, 0.4, 0), (0.2, 0.3, 0), (0.01, 0.3, 0)],
}
ENDINGS = {
    0: StepRecord(5, 0.5, 2.0, True, eval_loss=0.5),
    1: StepRecord(1, 1.5, NAN, True, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_GRAD),
    2: StepRecord(2, NAN, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_LOSS),
    3: StepRecord(0, NAN, outcome=Outcome.DIVERGED, trigger=Trigger.NONFINITE_LOSS),
    4: StepRecord(3, 0.01, 0.3, False, eval_loss=0.005, outcome=Outcome.CONVERGED),
}


def records(seed: int) -> list[StepRecord]:
    """Evaluations at odd steps, as when eval_every is 2."""
    steps = STEPS[seed]
    out = [StepRecord(i, loss, norm, bool(c), eval_loss=0.1 * i if i % 2 else None)
           for i, (loss, norm, c) in enumerate(steps[:-1])]
    return out + [ENDINGS[seed]]


def same(a: RunResult, b: RunResult) -> bool:
    def norm(value: object) -> object:
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value
    return norm(dataclasses.asdict(a)) == norm(dataclasses.asdict(b))


def add(chunk: ChunkRecorder, step: int, recs: dict[int, StepRecord], *, evaluated: bool) -> None:
    if not recs:
        return
    f64 = dict(dtype=torch.float64)
    chunk.add(step, torch.tensor(list(recs)), torch.tensor([r.loss for r in recs.values()], **f64),
              torch.tensor([NAN if r.grad_norm is None else r.grad_norm for r in recs.values()], **f64),
              torch.tensor([float(r.clipped) for r in recs.values()], **f64),
              has_norm=torch.tensor([r.grad_norm is not None for r in recs.values()]),
              eval_loss=torch.tensor([r.eval_loss for r in recs.values()], **f64) if evaluated else None)


def test_the_same_results_as_one_recorder_per_seed() -> None:
    for record_every in (1, 2, 4):
        chunk = ChunkRecorder(len(STEPS), record_every)
        for step in range(max(len(s) for s in STEPS.values())):
            recs = {seed: records(seed)[step] for seed in STEPS if step < len(STEPS[seed])}
            # As the engine does: seeds that diverged leave first, the others are added after evaluation.
            diverged = [seed for seed, r in recs.items() if r.outcome is Outcome.DIVERGED]
            add(chunk, step, {seed: recs[seed] for seed in diverged}, evaluated=False)
            add(chunk, step, {seed: r for seed, r in recs.items() if seed not in diverged}, evaluated=step % 2 == 1)
        for seed in STEPS:
            one = RunRecorder(record_every)
            for rec in records(seed):
                one.add(rec)
            expected = one.result()
            got = chunk.result(seed, ENDINGS[seed])
            assert same(got, expected), (record_every, seed, got, expected)


def test_norms_past_the_dense_bins_are_still_counted() -> None:
    chunk = ChunkRecorder(1, 1)
    one = torch.tensor([0])
    for step, value in enumerate([1e45, 1e45, 1.0]):
        chunk.add(step, one, torch.tensor([1.0], dtype=torch.float64), torch.tensor([value], dtype=torch.float64),
                  torch.tensor([0.0], dtype=torch.float64))
    histogram = chunk.result(0, StepRecord(2, 1.0, 1.0)).norm_histogram
    assert histogram == {900: 2, 0: 1}


def test_the_peak_norm_and_the_last_step_are_points_whatever_record_every_says() -> None:
    """Seed 0's largest norm (1e45 at step 3) and seed 2's last norm before its loss blew up
    (0.2 at step 1) lie off a record_every=4 grid: both are kept, so a chart shows them."""
    chunk = ChunkRecorder(len(STEPS), 4)
    for step in range(max(len(s) for s in STEPS.values())):
        add(chunk, step, {seed: records(seed)[step] for seed in STEPS if step < len(STEPS[seed])}, evaluated=False)
    def kept(seed: int) -> list[tuple[int, float | None]]:
        return [(p.step, p.grad_norm) for p in chunk.result(seed, ENDINGS[seed]).points]
    assert kept(0) == [(0, 0.5), (3, 1e45), (4, 0.0), (5, 2.0)]
    assert kept(2) == [(0, 0.1), (1, 0.2), (2, None)]
