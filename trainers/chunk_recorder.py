"""RunRecorder for a chunk of seeds at once: the same RunResults, without Python work per seed per step.

At thousands of seeds on a GPU a step takes milliseconds, and folding each seed's record into its
own RunRecorder (a StepRecord, a few comparisons, a histogram update) took longer than the step.
Here the running aggregates (minimum loss, maximum norm, clipped steps, the norm histogram, ...)
are float64 tensors on the host indexed by the seed's position in the chunk, updated for all seeds
of a step in a few tensor operations. Python runs per seed only where it must: for the points kept
every `record_every`-th step, and when a seed finishes (its last step and the step of its largest
norm are kept too). The rules are RunRecorder's
(trainers/loop.py); the vectorized/sequential equivalence tests hold the two together.
"""

from __future__ import annotations

import torch

from trainers.loop import Point, RunResult, StepRecord, final_result, with_point
from trainers.norm_histogram import norm_bins

# Norm bins kept densely per seed: 1e-30 (the smallest bin) up to 1e40, past float32's largest
# norm. A float64 model's larger norms go to a per-seed dict.
_LOW, _HIGH = norm_bins(torch.tensor([0.0, 1e40], dtype=torch.float64)).tolist()


class ChunkRecorder:
    """The running aggregates of a chunk's seeds, one row each, folded a whole step at a time
    (`add`); `result` turns one seed's row into its RunResult when the seed finishes."""

    def __init__(self, n_seeds: int, record_every: int) -> None:
        f64 = dict(dtype=torch.float64)
        self.record_every = record_every
        self.initial = torch.full((n_seeds,), float("nan"), **f64)
        self.min_loss = torch.full((n_seeds,), float("inf"), **f64)
        self.max_norm = torch.full((n_seeds,), float("nan"), **f64)
        self.has_norm = torch.zeros(n_seeds, dtype=torch.bool)
        self.last_norm = torch.full((n_seeds,), float("nan"), **f64)
        self.final_eval = torch.full((n_seeds,), float("nan"), **f64)
        self.has_eval = torch.zeros(n_seeds, dtype=torch.bool)
        self.clipped_steps = torch.zeros(n_seeds, dtype=torch.int64)
        self.histogram = torch.zeros(n_seeds, _HIGH - _LOW + 1, dtype=torch.int32)
        self.histogram_overflow: dict[int, dict[int, int]] = {}
        self.points: list[list[Point]] = [[] for _ in range(n_seeds)]
        # The step of each seed's largest norm, with its loss and clipped flag: kept as a point.
        self.peak_step = torch.full((n_seeds,), -1, dtype=torch.int64)
        self.peak_loss = torch.full((n_seeds,), float("nan"), **f64)
        self.peak_clipped = torch.zeros(n_seeds, **f64)

    def add(self, step: int, ids: torch.Tensor, loss: torch.Tensor, norm: torch.Tensor, clipped: torch.Tensor,
            *, has_norm: torch.Tensor | None = None, eval_loss: torch.Tensor | None = None) -> None:
        """Fold step `step` of the seeds at positions `ids` (CPU int64; float64 values, `clipped`
        0/1). `has_norm` is false where a seed diverged on its loss before a norm existed."""
        if step == 0:
            self.initial[ids] = loss
        finite = torch.isfinite(loss)
        self.min_loss[ids] = torch.where(finite, torch.minimum(self.min_loss[ids], loss), self.min_loss[ids])
        with_norm = ids if has_norm is None else ids[has_norm]
        norm_loss = loss if has_norm is None else loss[has_norm]
        if has_norm is not None:
            norm, clipped = norm[has_norm], clipped[has_norm]
        if len(with_norm):
            # RunRecorder's rule: a new norm replaces the maximum unless it is <= it (NaN is kept).
            current = self.max_norm[with_norm]
            replace = ~self.has_norm[with_norm] | ~(norm <= current)
            self.max_norm[with_norm] = torch.where(replace, norm, current)
            peaked = with_norm[replace]
            self.peak_step[peaked] = step
            self.peak_loss[peaked] = norm_loss[replace]
            self.peak_clipped[peaked] = clipped[replace]
            self.has_norm[with_norm] = True
            self.last_norm[with_norm] = norm
            self.clipped_steps[with_norm] += clipped.long()
            self._count_norms(with_norm, norm)
        if eval_loss is not None:
            self.final_eval[ids] = eval_loss
            self.has_eval[ids] = True
        if step % self.record_every == 0:
            self._keep_points(step, ids, loss, has_norm, norm, clipped)

    def _count_norms(self, ids: torch.Tensor, norm: torch.Tensor) -> None:
        finite = torch.isfinite(norm)
        ids, bins = ids[finite], norm_bins(norm[finite])
        dense = bins <= _HIGH
        self.histogram[ids[dense], bins[dense] - _LOW] += 1
        for seed, index in zip(ids[~dense].tolist(), bins[~dense].tolist()):
            counts = self.histogram_overflow.setdefault(seed, {})
            counts[index] = counts.get(index, 0) + 1

    def _keep_points(self, step: int, ids: torch.Tensor, loss: torch.Tensor, has_norm: torch.Tensor | None,
                     norm: torch.Tensor, clipped: torch.Tensor) -> None:
        # `norm` and `clipped` hold only the seeds with a norm; spread them back over `ids`.
        full_norm = torch.full_like(loss, float("nan"))
        full_clipped = torch.zeros_like(loss)
        mask = torch.ones_like(loss, dtype=torch.bool) if has_norm is None else has_norm
        full_norm[mask], full_clipped[mask] = norm, clipped
        for seed, value, n, c, m in zip(ids.tolist(), loss.tolist(), full_norm.tolist(),
                                        full_clipped.tolist(), mask.tolist()):
            self.points[seed].append(Point(step, value, n if m else None, bool(c)))

    def result(self, seed: int, last: StepRecord) -> RunResult:
        """The RunResult of the seed at position `seed`, whose final step record is `last` (already added)."""
        min_loss = float(self.min_loss[seed])
        row = self.histogram[seed]
        histogram = {int(i) + _LOW: int(row[i]) for i in row.nonzero().flatten()}
        histogram.update(self.histogram_overflow.get(seed, {}))
        has_norm = bool(self.has_norm[seed])
        peak = (Point(int(self.peak_step[seed]), float(self.peak_loss[seed]), float(self.max_norm[seed]),
                      bool(self.peak_clipped[seed])) if has_norm else None)
        return final_result(
            last, with_point(self.points[seed], peak),
            initial_loss=float(self.initial[seed]),
            min_loss=min_loss if min_loss != float("inf") else None,
            final_eval_loss=float(self.final_eval[seed]) if self.has_eval[seed] else None,
            clipped_steps=int(self.clipped_steps[seed]),
            max_grad_norm=float(self.max_norm[seed]) if has_norm else None,
            norm_histogram=histogram,
            last_norm=float(self.last_norm[seed]) if has_norm else None,
        )
