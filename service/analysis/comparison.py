"""One sweep against another (its baseline): which cells diverge more often, which are slower to
reach the target, whose stability frontier fell, and where clipping stopped protecting. Pure
functions of the two sweeps' trained runs; no database.

Cells are matched by their configuration hash (the same training configuration in any sweep); a
cell on one side only is listed as such, never compared with a guess.

Divergence is tested with exact tests of yes/no outcomes (analysis/exact_tests.py): McNemar's on
the same seeds, Boschloo's on different ones, and Benjamini–Hochberg across a comparison's cells.
What the thresholds make of the numbers is analysis/findings.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from service.analysis.exact_tests import benjamini_hochberg, mcnemar_one_sided, two_proportions_one_sided
from service.analysis.findings import Finding, judge
from service.analysis.statistics import (
    MIN_TOLERANCE,
    median_steps_to_target,
    percentile,
    stable_learning_rate,
    wilson_interval,
)


@dataclass(frozen=True)
class Thresholds:
    """When a difference is a regression (or an improvement): per schedule, or per request."""

    alpha: float = 0.05  # the Benjamini–Hochberg q a divergence change must be under
    min_effect: float = 0.10  # and the smallest change of divergence rate that counts
    min_slowdown: float = 1.2  # the smallest ratio of median steps to target that counts
    tolerance: float = 0.05  # the stability frontier's divergence tolerance
    consecutive: int = 1  # sweeps in a row a regression must hold before it alerts

    def __post_init__(self) -> None:
        checks = [(0 < self.alpha < 1, "alpha must be in (0, 1)"),
                  (0 < self.min_effect <= 1, "min_effect must be in (0, 1]"),
                  (1 <= self.min_slowdown <= 1000, "min_slowdown must be in [1, 1000]"),
                  (MIN_TOLERANCE <= self.tolerance < 1, f"tolerance must be in [{MIN_TOLERANCE}, 1)"),
                  (1 <= self.consecutive <= 30, "consecutive must be in [1, 30]")]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class CellRuns:
    """One cell's trained runs (converged, diverged or unconverged), seed by seed."""

    config_hash: str
    cell_index: int
    lr: float
    clipping: str  # the arm's label
    clip_method: str
    diverged: Mapping[int, bool]  # seed -> diverged
    converged_at: Mapping[int, int | None]  # seed -> step it reached the target, None if it never did
    finished: bool = True  # every run of the cell has an outcome


@dataclass(frozen=True)
class Side:
    diverged: int
    runs: int

    @property
    def rate(self) -> float | None:
        return self.diverged / self.runs if self.runs else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.diverged, self.runs) if self.runs else None


@dataclass(frozen=True)
class DivergenceChange:
    """A matched cell's divergence, baseline against current, with both one-sided tests."""

    config_hash: str
    cell_index: int
    baseline_cell_index: int
    lr: float
    clipping: str
    clip_method: str
    baseline: Side
    current: Side
    test: str  # mcnemar (same seeds), boschloo or fisher (different seeds)
    p_worse: float
    p_better: float
    q_worse: float = 1.0
    q_better: float = 1.0
    flipped: tuple[int, ...] = ()  # seeds that diverge now and did not (paired only)
    recovered: tuple[int, ...] = ()  # seeds that diverged and now do not (paired only)

    @property
    def rate_change(self) -> float:
        return (self.current.rate or 0.0) - (self.baseline.rate or 0.0)


@dataclass(frozen=True)
class SpeedChange:
    """A matched cell's median steps to target (unconverged runs infinitely slow), current ÷
    baseline, with a seeded bootstrap 95% interval of the ratio."""

    config_hash: str
    cell_index: int
    lr: float
    clipping: str
    baseline_median: float
    current_median: float
    ratio: float
    low: float
    high: float


@dataclass(frozen=True)
class FrontierChange:
    """An arm's highest stable learning rate over the matched cells, on both sides (None: none)."""

    clipping: str
    clip_method: str
    baseline_lr: float | None
    current_lr: float | None


@dataclass(frozen=True)
class Comparison:
    divergence: list[DivergenceChange]
    speed: list[SpeedChange]
    frontier: list[FrontierChange]
    only_current: list[CellRuns]
    only_baseline: list[CellRuns]
    regressions: list[Finding] = field(default_factory=list)
    improvements: list[Finding] = field(default_factory=list)


def divergence_change(current: CellRuns, baseline: CellRuns) -> DivergenceChange:
    """Paired when both sides trained exactly the same seeds; independent samples otherwise."""
    common = dict(config_hash=current.config_hash, cell_index=current.cell_index,
                  baseline_cell_index=baseline.cell_index, lr=current.lr, clipping=current.clipping,
                  clip_method=current.clip_method)
    if current.diverged and set(current.diverged) == set(baseline.diverged):
        seeds = sorted(current.diverged)
        flipped = tuple(s for s in seeds if current.diverged[s] and not baseline.diverged[s])
        recovered = tuple(s for s in seeds if baseline.diverged[s] and not current.diverged[s])
        return DivergenceChange(
            **common, baseline=Side(sum(baseline.diverged.values()), len(seeds)),
            current=Side(sum(current.diverged.values()), len(seeds)), test="mcnemar",
            p_worse=mcnemar_one_sided(len(flipped), len(recovered)),
            p_better=mcnemar_one_sided(len(recovered), len(flipped)), flipped=flipped, recovered=recovered)
    now = Side(sum(current.diverged.values()), len(current.diverged))
    before = Side(sum(baseline.diverged.values()), len(baseline.diverged))
    test, p_worse = two_proportions_one_sided(now, before)
    _, p_better = two_proportions_one_sided(before, now)
    return DivergenceChange(**common, baseline=before, current=now, test=test, p_worse=p_worse, p_better=p_better)


def speed_change(current: CellRuns, baseline: CellRuns, *, resamples: int = 2000,
                 seed: int = 0) -> SpeedChange | None:
    """None unless the median run converged on both sides (a ratio of infinities says nothing)."""
    now_steps, before_steps = list(current.converged_at.values()), list(baseline.converged_at.values())
    now_median, before_median = median_steps_to_target(now_steps), median_steps_to_target(before_steps)
    if now_median is None or before_median is None or before_median <= 0:
        return None
    rng = np.random.default_rng(seed)
    as_array = lambda steps: np.array([math.inf if s is None else float(s) for s in steps])  # noqa: E731
    now_values, before_values = as_array(now_steps), as_array(before_steps)
    if set(current.converged_at) == set(baseline.converged_at):
        # The same seeds: resample seeds, keeping each seed's pair together.
        order = sorted(current.converged_at)
        now_values = as_array([current.converged_at[s] for s in order])
        before_values = as_array([baseline.converged_at[s] for s in order])
        draws = rng.integers(0, len(order), size=(resamples, len(order)))
        now_draws, before_draws = draws, draws
    else:
        now_draws = rng.integers(0, len(now_values), size=(resamples, len(now_values)))
        before_draws = rng.integers(0, len(before_values), size=(resamples, len(before_values)))
    now_medians = np.median(now_values[now_draws], axis=1)
    before_medians = np.median(before_values[before_draws], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = now_medians / before_medians
    # Both infinite: equally unconverged, no change; a zero baseline median cannot happen (step >= 1).
    ratios = np.where(np.isnan(ratios), 1.0, ratios)
    ordered = np.sort(ratios).tolist()
    return SpeedChange(config_hash=current.config_hash, cell_index=current.cell_index, lr=current.lr,
                       clipping=current.clipping, baseline_median=before_median, current_median=now_median,
                       ratio=now_median / before_median, low=percentile(ordered, 0.025),
                       high=percentile(ordered, 0.975))


def _frontiers(pairs: Sequence[tuple[CellRuns, CellRuns]], tolerance: float) -> list[FrontierChange]:
    arms: dict[str, list[tuple[CellRuns, CellRuns]]] = {}
    for current, baseline in pairs:
        arms.setdefault(current.clipping, []).append((current, baseline))
    out = []
    for label, cells in arms.items():
        def stable(side: int) -> float | None:
            value = stable_learning_rate({pair[0].lr: (sum(pair[side].diverged.values()), len(pair[side].diverged))
                                          for pair in cells}, tolerance)
            return value if isinstance(value, float) else None
        out.append(FrontierChange(clipping=label, clip_method=cells[0][0].clip_method, baseline_lr=stable(1),
                                  current_lr=stable(0)))
    return out


def compare(current: Sequence[CellRuns], baseline: Sequence[CellRuns], thresholds: Thresholds) -> Comparison:
    """Every test on the matched cells, and what the thresholds make of them."""
    before = {cell.config_hash: cell for cell in baseline}
    now_hashes = {cell.config_hash for cell in current}
    pairs = [(cell, before[cell.config_hash]) for cell in current if cell.config_hash in before]
    changes = [divergence_change(now, then) for now, then in pairs if now.diverged and then.diverged]
    worse_q = benjamini_hochberg([c.p_worse for c in changes])
    better_q = benjamini_hochberg([c.p_better for c in changes])
    changes = [_with_q(c, qw, qb) for c, qw, qb in zip(changes, worse_q, better_q)]
    speeds = [s for i, (now, then) in enumerate(pairs)
              if now.finished and then.finished and (s := speed_change(now, then, seed=i)) is not None]
    frontier = _frontiers([(now, then) for now, then in pairs if now.diverged and then.diverged], thresholds.tolerance)
    result = Comparison(divergence=changes, speed=speeds, frontier=frontier,
                        only_current=[c for c in current if c.config_hash not in before],
                        only_baseline=[c for c in baseline if c.config_hash not in now_hashes])
    judge(result, thresholds)
    return result


def _with_q(change: DivergenceChange, q_worse: float, q_better: float) -> DivergenceChange:
    return DivergenceChange(**{**change.__dict__, "q_worse": q_worse, "q_better": q_better})


Versions = Mapping[str, "str | None"]


def environment_change(baseline: Versions | None, current: Versions | None) -> list[str]:
    """What differs between the versions two sweeps trained with, e.g. ["torch 2.13.0 → 2.14.0"]."""
    if not baseline or not current:
        return []
    return [f"{key} {baseline.get(key) or 'none'} → {current.get(key) or 'none'}"
            for key in sorted(set(baseline) | set(current)) if baseline.get(key) != current.get(key)]
