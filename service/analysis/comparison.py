"""One sweep against another (its baseline): which cells diverge more often, which are slower to
reach the target, whose stability frontier fell, and where clipping stopped protecting. Pure
functions of the two sweeps' trained runs; no database.

Cells are matched by their configuration hash (the same training configuration in any sweep); a
cell on one side only is listed as such, never compared with a guess.

Divergence is a yes/no outcome, so the tests are exact tests of binomial data, not t-tests:
- the same seeds on both sides (a schedule with `seed_policy: same`): each seed is a pair, and the
  exact one-sided McNemar test asks whether more seeds flipped to diverging than back;
- different seeds (`seed_policy: fresh`): Boschloo's exact test of two proportions, one-sided.
  It is uniformly more powerful than Fisher's, which conditions on both margins as if the total
  number of divergences had been fixed in advance (it was not). Its cost grows with the product of
  the two sample sizes, so above BOSCHLOO_MAX_RUNS runs a side Fisher's test, conservative and
  fast, stands in (`test` says which ran).
Across a comparison's cells the false discovery rate is controlled by Benjamini–Hochberg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import binom, boschloo_exact, false_discovery_control, fisher_exact

from service.analysis.statistics import (
    MIN_TOLERANCE,
    median_steps_to_target,
    percentile,
    stable_learning_rate,
    wilson_interval,
)
from trainers.clipping import BASELINE

BOSCHLOO_MAX_RUNS = 128


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
class Finding:
    """A regression or improvement the thresholds call real. `subject` is what it is about: a
    cell's configuration hash, or an arm's label for the frontier."""

    kind: str  # divergence, slowdown, frontier, protection; or improvement
    measure: str  # what changed: divergence, slowdown (speed), frontier, protection
    subject: str
    lr: float | None
    clipping: str
    evidence: dict[str, object]
    text: str


@dataclass(frozen=True)
class Comparison:
    divergence: list[DivergenceChange]
    speed: list[SpeedChange]
    frontier: list[FrontierChange]
    only_current: list[CellRuns]
    only_baseline: list[CellRuns]
    regressions: list[Finding] = field(default_factory=list)
    improvements: list[Finding] = field(default_factory=list)


def mcnemar_one_sided(worse: int, better: int) -> float:
    """Exact one-sided McNemar p-value: the chance of `worse` or more of the `worse + better`
    discordant pairs going the worse way if each were a fair coin. 1 with no discordant pairs."""
    if worse < 0 or better < 0:
        raise ValueError(f"discordant counts must be >= 0, got {worse} and {better}")
    n = worse + better
    return 1.0 if n == 0 else float(binom.sf(worse - 1, n, 0.5))


def two_proportions_one_sided(current: Side, baseline: Side) -> tuple[str, float]:
    """(test, p) for "the current rate is higher than the baseline's", on independent samples."""
    if current.runs == 0 or baseline.runs == 0:
        return "none", 1.0
    table = [[current.diverged, baseline.diverged],
             [current.runs - current.diverged, baseline.runs - baseline.diverged]]
    if max(current.runs, baseline.runs) <= BOSCHLOO_MAX_RUNS:
        return "boschloo", min(1.0, float(boschloo_exact(table, alternative="greater").pvalue))
    return "fisher", min(1.0, float(fisher_exact(table, alternative="greater").pvalue))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q), in the order given."""
    if not p_values:
        return []
    return [float(q) for q in false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


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
    _judge(result, thresholds)
    return result


def _with_q(change: DivergenceChange, q_worse: float, q_better: float) -> DivergenceChange:
    return DivergenceChange(**{**change.__dict__, "q_worse": q_worse, "q_better": q_better})


def _fraction(side: Side) -> str:
    return f"{side.diverged}/{side.runs}"


def _q(q: float) -> str:
    return f"{q:.2g}" if q >= 0.001 else f"{q:.1e}"


def _cell_name(lr: float, clipping: str) -> str:
    return f"lr {lr:g}, {clipping}"


def _judge(result: Comparison, t: Thresholds) -> None:
    """Fill in the regressions and improvements the thresholds call real."""
    for c in result.divergence:
        evidence = divergence_evidence(c)
        name = _cell_name(c.lr, c.clipping)
        if c.q_worse < t.alpha and c.rate_change >= t.min_effect:
            result.regressions.append(Finding(
                "divergence", "divergence", c.config_hash, c.lr, c.clipping, evidence,
                f"divergence at {name}: {_fraction(c.baseline)} → {_fraction(c.current)} (q = {_q(c.q_worse)})"))
        elif c.q_better < t.alpha and -c.rate_change >= t.min_effect:
            result.improvements.append(Finding(
                "improvement", "divergence", c.config_hash, c.lr, c.clipping, evidence,
                f"less divergence at {name}: {_fraction(c.baseline)} → {_fraction(c.current)} "
                f"(q = {_q(c.q_better)})"))
        if c.clip_method != BASELINE and c.baseline.diverged == 0 and c.current.diverged > 0:
            result.regressions.append(Finding(
                "protection", "protection", c.config_hash, c.lr, c.clipping, evidence,
                f"clipping stopped protecting at {name}: 0/{c.baseline.runs} diverged before, "
                f"{_fraction(c.current)} now"))
    for s in result.speed:
        evidence = {"baseline_median": s.baseline_median, "current_median": s.current_median, "ratio": s.ratio,
                    "ratio_low": s.low, "ratio_high": s.high, "cell_index": s.cell_index}
        name = _cell_name(s.lr, s.clipping)
        between = f"median steps to target {s.baseline_median:g} → {s.current_median:g}"
        if s.low > 1 and s.ratio >= t.min_slowdown:
            result.regressions.append(Finding(
                "slowdown", "slowdown", s.config_hash, s.lr, s.clipping, evidence,
                f"slower at {name}: {between} ({s.ratio:.2f}×, 95% interval {s.low:.2f}–{s.high:.2f})"))
        elif s.high < 1 and s.ratio <= 1 / t.min_slowdown:
            result.improvements.append(Finding(
                "improvement", "slowdown", s.config_hash, s.lr, s.clipping, evidence,
                f"faster at {name}: {between} ({s.ratio:.2f}×, 95% interval {s.low:.2f}–{s.high:.2f})"))
    for f in result.frontier:
        evidence = {"baseline_lr": f.baseline_lr, "current_lr": f.current_lr, "tolerance": t.tolerance}
        said = f"highest stable lr for {f.clipping} at {t.tolerance:.0%}: {_lr(f.baseline_lr)} → {_lr(f.current_lr)}"
        if f.baseline_lr is not None and (f.current_lr is None or f.current_lr < f.baseline_lr):
            result.regressions.append(Finding("frontier", "frontier", f.clipping, f.current_lr, f.clipping,
                                              evidence, said))
        elif f.current_lr is not None and (f.baseline_lr is None or f.current_lr > f.baseline_lr):
            result.improvements.append(Finding("improvement", "frontier", f.clipping, f.current_lr, f.clipping,
                                               evidence, said))


def _lr(lr: float | None) -> str:
    return "none" if lr is None else f"{lr:g}"


def divergence_evidence(c: DivergenceChange) -> dict[str, object]:
    """A divergence change as stored with an alert and sent in a webhook."""
    return {"cell_index": c.cell_index, "baseline_cell_index": c.baseline_cell_index, "test": c.test,
            "baseline": {"diverged": c.baseline.diverged, "runs": c.baseline.runs, "rate": c.baseline.rate,
                         "interval": c.baseline.interval},
            "current": {"diverged": c.current.diverged, "runs": c.current.runs, "rate": c.current.rate,
                        "interval": c.current.interval},
            "rate_change": c.rate_change, "p_worse": c.p_worse, "q_worse": c.q_worse, "p_better": c.p_better,
            "q_better": c.q_better, "flipped_seeds": list(c.flipped), "recovered_seeds": list(c.recovered)}


def environment_change(baseline: Mapping[str, str | None] | None, current: Mapping[str, str | None] | None) -> list[str]:
    """What differs between the versions two sweeps trained with, e.g. ["torch 2.13.0 → 2.14.0"]."""
    if not baseline or not current:
        return []
    return [f"{key} {baseline.get(key) or 'none'} → {current.get(key) or 'none'}"
            for key in sorted(set(baseline) | set(current)) if baseline.get(key) != current.get(key)]
