"""How many seeds a question needs, answered before any training: what a fixed spec can and cannot
show, and how many more seeds an undecided cell would need.

Two questions, with the tests the summary uses:

- stability: a cell is stable at a tolerance when its Wilson 95% upper bound is under it. With n
  seeds the best a cell can do is no divergence at all, so n seeds cannot show a rate under
  `wilson_upper(0, n)`, and a rate near the tolerance takes many more seeds than one far below it.
- a difference: the summary tests a clipping arm against `none` seed by seed with the two-sided
  exact McNemar test at 5%. Its power for given true rates is computed exactly, assuming a seed's
  divergence under one arm says nothing of the other (independent arms; if clipping only ever
  removes divergences, the discordant pairs all point one way and fewer seeds suffice).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

from service.analysis.sequential import log_evidence_below
from service.analysis.statistics import wilson_interval

MOST_SEEDS = 100_000  # the most any answer here counts up to (a sweep holds at most 100,000 runs by default)


def smallest_rate_ruled_out(seeds: int, anytime_alpha: float | None = None) -> float:
    """The lowest divergence rate `seeds` seeds can rule out, none diverging: Wilson's upper bound
    at 0 of `seeds`, or with `anytime_alpha` (adaptive seeds) the lowest tolerance the anytime-valid
    test shows a cell under with no divergence in `seeds`."""
    if anytime_alpha is None:
        return wilson_interval(0, seeds)[1]
    low, high = 0.0, 1.0  # the evidence against "at least t" grows with t: bisect on t
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if log_evidence_below(0, seeds, mid) >= -math.log(anytime_alpha) else (mid, high)
    return high


def seeds_to_decide(rate: float, tolerance: float) -> int | None:
    """The fewest seeds at which a cell diverging at `rate` (observed as such) has its Wilson
    interval clear the tolerance: under it (stable) or over it (unstable). None when the rate is
    the tolerance itself, or past MOST_SEEDS."""
    if rate == tolerance:
        return None

    def clears(n: int) -> bool:
        low, high = wilson_interval(round(rate * n), n)
        return high < tolerance if rate < tolerance else low > tolerance

    return _smallest(clears)


def seeds_to_settle(diverged: int, finished: int, tolerance: float) -> int | None:
    """For a finished cell whose Wilson interval still straddles the tolerance: how many seeds in all
    it would need if its observed rate held. None when it is decided, or no count would do."""
    if finished == 0:
        return None
    low, high = wilson_interval(diverged, finished)
    if high < tolerance or low > tolerance:
        return None
    needed = seeds_to_decide(diverged / finished, tolerance)
    return needed if needed is not None and needed > finished else None


def _smallest(ok: object) -> int | None:
    """The smallest n in [1, MOST_SEEDS] with ok(n), by doubling then bisection (ok is taken to be
    monotone, which the Wilson bounds and the power below are up to rounding)."""
    high = 1
    while not ok(high):  # type: ignore[operator]
        if high >= MOST_SEEDS:
            return None
        high = min(2 * high, MOST_SEEDS)
    low = high // 2
    while high - low > 1:
        mid = (low + high) // 2
        if ok(mid):  # type: ignore[operator]
            high = mid
        else:
            low = mid
    return high


def paired_power(none_rate: float, arm_rate: float, seeds: int, alpha: float = 0.05) -> float:
    """The chance that the two-sided exact McNemar test at `alpha` finds a difference between
    `none` and an arm with these true rates, on `seeds` paired seeds (independent arms)."""
    only_none, only_arm = none_rate * (1 - arm_rate), arm_rate * (1 - none_rate)
    discordant = only_none + only_arm
    if discordant == 0:
        return 0.0
    d = np.arange(seeds + 1)
    # Per number of discordant pairs d: the largest count k of the rarer side with a p-value
    # 2·P(Bin(d, ½) <= k) <= alpha (-1: none, the test cannot reject with d pairs).
    k = binom.ppf(alpha / 2, d, 0.5)
    k = np.where(binom.cdf(k, d, 0.5) <= alpha / 2, k, k - 1)
    q = only_none / discordant
    reject = binom.cdf(k, d, 1 - q) + binom.cdf(k, d, q)  # the arm's side small, or none's side small
    reject = np.where(k >= 0, np.minimum(reject, 1.0), 0.0)
    return float(np.sum(binom.pmf(d, seeds, discordant) * reject))


def seeds_for_power(none_rate: float, arm_rate: float, power: float = 0.8, alpha: float = 0.05) -> int | None:
    """The fewest paired seeds at which the test finds the difference with `power`; None when the
    rates are equal or it takes more than MOST_SEEDS."""
    if math.isclose(none_rate, arm_rate):
        return None
    return _smallest(lambda n: paired_power(none_rate, arm_rate, n, alpha) >= power)
