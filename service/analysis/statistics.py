"""Statistics of sweep outcomes: pure functions, no database, no I/O."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Mapping, Sequence

import numpy as np

from service.analysis.numbers import percent

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is informative at 0/n and n/n,
    which are the common cases here (a clipped arm that never diverges).
    """
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0/n and n/n the bound is exact; rounding must not push it off 0 or 1.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def median_steps_to_target(steps: Sequence[int | None]) -> float | None:
    """Median steps to target over all runs of a cell, where a run that never converged counts as
    infinitely slow. Defined only when more than half the runs converged; None otherwise.

    `steps` holds each run's converged_at_step, None for runs that did not converge.
    """
    if not steps:
        return None
    median = _median([math.inf if s is None else float(s) for s in steps])
    return None if math.isinf(median) else median


@dataclass(frozen=True)
class Unavailable:
    """A statistic that cannot be computed from these runs, and why (shown instead of a number)."""

    reason: str


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a 95% interval; a bound may be infinite (e.g. a median step count
    when resampling can leave fewer than half the runs converged)."""

    value: float
    low: float
    high: float


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pair counts: under the null each
    discordant pair is a fair coin, so p = min(1, 2 · P(Binomial(b + c, ½) ≤ min(b, c)))."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


@dataclass(frozen=True)
class PairedComparison:
    """An arm against the reference arm (`none`) on the seeds both have outcomes for."""

    pairs: int
    reference_only: int  # seeds that diverged under the reference and not under the arm
    arm_only: int  # seeds that diverged under the arm and not under the reference
    reference_rate: float
    arm_rate: float
    p_value: float

    @property
    def rate_difference(self) -> float:
        """arm rate − reference rate: negative when the arm diverges less."""
        return self.arm_rate - self.reference_rate


def paired_comparison(reference: Mapping[int, bool], arm: Mapping[int, bool]) -> PairedComparison | Unavailable:
    """Compare divergence (True = diverged) seed by seed: the same seeds are the same
    initializations and data under every arm, so the test is McNemar's on the discordant pairs."""
    seeds = sorted(set(reference) & set(arm))
    if not seeds:
        return Unavailable("no seed has a final outcome under both arms yet")
    b = sum(1 for s in seeds if reference[s] and not arm[s])
    c = sum(1 for s in seeds if arm[s] and not reference[s])
    n = len(seeds)
    return PairedComparison(pairs=n, reference_only=b, arm_only=c,
                            reference_rate=sum(reference[s] for s in seeds) / n,
                            arm_rate=sum(arm[s] for s in seeds) / n, p_value=mcnemar_exact(b, c))


def converged_fraction(steps: Sequence[int | None], at: Sequence[int]) -> list[float]:
    """The fraction of all runs converged by each step in `at`. `steps` holds each run's
    converged_at_step, None for a run that never converged (diverged or out of budget): such runs
    stay in the denominator."""
    if not steps:
        return [0.0 for _ in at]
    done = sorted(s for s in steps if s is not None)
    return [bisect.bisect_right(done, t) / len(steps) for t in at]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of sorted values."""
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    if math.isinf(ordered[low]) or math.isinf(ordered[high]):
        return ordered[high] if position > low else ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def steps_to_target(steps: Sequence[int | None], *, resamples: int = 2000, seed: int = 0) -> Estimate | Unavailable:
    """Median steps to target over all runs, a run that never converged counting as infinitely
    slow, with a seeded percentile bootstrap 95% interval (runs resampled with replacement). Only
    where the median run converged (more than half did); the upper bound is infinite when resamples with fewer
    than half converged reach the 97.5th percentile."""
    if not steps:
        return Unavailable("no runs have finished")
    value = median_steps_to_target(steps)
    if value is None:
        converged = sum(1 for s in steps if s is not None)
        return Unavailable(f"only {converged} of {len(steps)} runs reached the target: the median run did not")
    values = np.array([math.inf if s is None else float(s) for s in steps])
    # All resamples at once: a summary bootstraps every cell of a sweep on each request.
    draws = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    ordered = np.sort(resample_medians(values, draws)).tolist()
    return Estimate(value, percentile(ordered, 0.025), percentile(ordered, 0.975))


def resample_medians(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """`np.median(values[draws], axis=1)`, the same numbers. Steps to target repeat (they are
    multiples of the evaluation interval, or infinite), so where each value comes four times or
    more on average, each resample's middle order statistics are read off its counts of each
    distinct value, which costs a third of sorting thousands of seeds 2,000 times over."""
    distinct, of = np.unique(values, return_inverse=True)  # sorted; each value's place in them
    resamples, n = draws.shape
    if 4 * len(distinct) > n:
        return np.median(values[draws], axis=1)
    offsets = (np.arange(resamples) * len(distinct))[:, None]
    counts = np.bincount((of[draws] + offsets).ravel(), minlength=resamples * len(distinct))
    at_most = np.cumsum(counts.reshape(resamples, len(distinct)), axis=1)  # values ≤ each distinct one

    def smallest(i: int) -> np.ndarray:  # each resample's i-th smallest value, from 0
        return distinct[(at_most <= i).sum(axis=1)]

    return smallest(n // 2) if n % 2 else (smallest(n // 2 - 1) + smallest(n // 2)) / 2


def median_steps_converged_only(steps: Sequence[int | None]) -> float | Unavailable:
    """Median steps over the runs that converged only: optimistic, and labelled so wherever shown."""
    converged = [float(s) for s in steps if s is not None]
    if not converged:
        return Unavailable("no run reached the target")
    return _median(converged)


def expected_steps_to_success(steps_done: Sequence[int], successes: int) -> float | Unavailable:
    """Expected steps until one run reaches the target when failed runs are restarted with a new
    seed: mean steps per attempt ÷ success probability (attempts are geometric). Infinite when
    nothing succeeded: the cost a user pays for an unstable setting."""
    if not steps_done:
        return Unavailable("no runs have finished")
    if not 0 <= successes <= len(steps_done):
        raise ValueError(f"successes must be in [0, {len(steps_done)}], got {successes}")
    if successes == 0:
        return math.inf
    return (sum(steps_done) / len(steps_done)) / (successes / len(steps_done))


# Below this a frontier would need more seeds than anyone trains (3.8 million at 1e-6), and the
# arithmetic of min_runs_for_tolerance would overflow near the smallest float.
MIN_TOLERANCE = 1e-6


def min_runs_for_tolerance(tolerance: float, z: float = Z95) -> int:
    """The fewest runs whose Wilson upper bound at 0 divergences is below `tolerance`."""
    # upper(0/n) = z² / (n + z²) < tol  ⇔  n > z² (1 − tol) / tol
    return math.floor(z * z * (1 - tolerance) / tolerance) + 1


def stable_learning_rate(cells: Mapping[float, tuple[int, int]], tolerance: float = 0.05) -> float | Unavailable:
    """The highest learning rate whose divergence rate's Wilson 95% upper bound is below
    `tolerance`. `cells` maps a learning rate to (diverged, runs with an outcome)."""
    if not MIN_TOLERANCE <= tolerance < 1:
        raise ValueError(f"tolerance must be in [{MIN_TOLERANCE}, 1), got {tolerance}")
    stable = [lr for lr, (diverged, n) in cells.items() if n > 0 and wilson_interval(diverged, n)[1] < tolerance]
    if stable:
        return max(stable)
    largest = max((n for _, n in cells.values()), default=0)
    needed = min_runs_for_tolerance(tolerance)
    if largest < needed:
        return Unavailable(f"with {largest} runs per learning rate even no divergence leaves an upper bound above "
                           f"{percent(tolerance)}; it takes at least {needed} seeds")
    return Unavailable(f"every learning rate's divergence upper bound is at or above {percent(tolerance)}")


@dataclass(frozen=True)
class Telemetry:
    """Clipping telemetry of a cell: over every update its runs made, not only the recorded points."""

    steps: int  # steps that computed a gradient
    clipped_fraction: float
    norm_p50: float  # quantiles of the finite pre-clip norms, to within 6% (one histogram bin)
    norm_p90: float
    norm_p99: float
    norm_max: float  # exact; infinite if a norm overflowed
    divergence_norm: float | Unavailable  # median over diverged runs of the norm that threw them off
    diverged_with_norm: int  # diverged runs that had computed a norm


def histogram_quantile(histogram: Mapping[int, int], q: float) -> float:
    """The q-quantile (nearest rank) of values counted in norm-histogram bins, as its bin's centre."""
    total = sum(histogram.values())
    if total <= 0:
        raise ValueError("the histogram is empty")
    # Imported here, not above: `trainers` imports torch (a second at start), and the CLI, which
    # imports this module for MIN_TOLERANCE and talks to the API only, must start at once.
    from trainers.norm_histogram import bin_centre

    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bin_centre(index)
    raise AssertionError("unreachable: the ranks add up to the total")


def merge_histograms(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """Sum per-run histograms bin by bin."""
    merged: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            merged[index] = merged.get(index, 0) + count
    return merged


def clipping_telemetry(histogram: Mapping[int, int], *, steps: int, clipped_steps: int, max_norms: Sequence[float],
                       divergence_norms: Sequence[float]) -> Telemetry | Unavailable:
    """A cell's clipping telemetry from its runs' merged norm histogram, how many steps computed a
    gradient and how many of those were clipped, each run's largest pre-clip norm, and each
    diverged run's last norm. NaN norms count as infinite."""
    if steps <= 0 or not histogram:
        return Unavailable("no update with a finite gradient norm has been recorded")
    # A NaN norm is the most extreme one there is.
    max_norm = max((math.inf if math.isnan(x) else x for x in max_norms), default=0.0)
    # A quantile cannot exceed the exact maximum, which the bin centre may.
    quantile = lambda q: min(histogram_quantile(histogram, q), max_norm)  # noqa: E731
    norms = [math.inf if math.isnan(x) else x for x in divergence_norms]
    return Telemetry(steps=steps, clipped_fraction=clipped_steps / steps, norm_p50=quantile(0.5),
                     norm_p90=quantile(0.9), norm_p99=quantile(0.99), norm_max=max_norm,
                     divergence_norm=_median(norms) if norms else Unavailable("no run diverged after an update"),
                     diverged_with_norm=len(norms))
