"""Tests that stay valid when a sweep looks after every round of seeds and stops once it knows.

A fixed-sample interval (Wilson's) is valid for the number of seeds chosen in advance. Looking
after every batch and stopping as soon as the upper bound clears the tolerance makes it wrong far
more often than its 5%: each look is another chance for the noise to clear it. These tests are
*anytime-valid*: each is a test martingale, a nonnegative (super)martingale that starts at 1
under its null hypothesis, and by Ville's inequality it ever reaches 1/alpha with probability at
most alpha, however the looks and the stopping are chosen. So "stable" is declared wrongly at
most alpha of the time, whenever the sweep looks and whenever it stops.

Each martingale is a likelihood ratio mixed over the alternative (a prior on the side of the
tolerance it argues for), against the closest point of the null. For "stable" the prior puts half
its weight on a rate of exactly 0 and spreads the other half uniformly under the tolerance: below
a cliff most cells never diverge at all, and that half shows such a cell stable from 68 seeds at
5% instead of 88, fewer than the 73 a fixed grid needs by Wilson's bound; a cell that diverges
even once keeps only the uniform half and needs somewhat more seeds (153 instead of 134 with one
divergence). The other mixtures are uniform. Mixed over one side only (q = 0 is on it), each is
a supermartingale under every rate of the null side, not just at the boundary: for a rate p on
the null side and any q on the other, E[(q/p0)^X ((1-q)/(1-p0))^(1-X)] <= 1. The mixtures have
closed forms in the regularized incomplete beta function (SciPy), so each look costs a few
special-function calls however many seeds have been trained.

- stability: is a cell's divergence rate under the tolerance (stable) or over it (unstable)?
- a paired difference: among the seeds where exactly one of two arms diverged (the discordant
  pairs, McNemar's), did the unclipped arm diverge more than half the time?
"""

from __future__ import annotations

import math
from enum import Enum
from functools import lru_cache
from typing import TypeVar

import numpy as np
from scipy.special import betainc, betaincc, betaln

# The evidence functions take counts as numbers or as numpy arrays (a simulation runs thousands
# of sequences at once); the verdicts take numbers.
N = TypeVar("N", int, np.ndarray)


class Verdict(str, Enum):
    STABLE = "stable"
    UNSTABLE = "unstable"
    UNDECIDED = "undecided"


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a probability of 0 is evidence -inf: never decides
        return np.log(x)


def log_evidence_below(diverged: N, seeds: N, tolerance: float) -> N:
    """log of the test martingale against "the rate is at least `tolerance`" after `diverged` of
    `seeds` runs diverged: the likelihood ratio of a rate q to the tolerance, mixed half at q = 0
    and half uniformly over q in [0, tolerance]."""
    s, f, t = diverged, seeds - diverged, tolerance
    # (1/t) ∫_0^t (q/t)^s ((1-q)/(1-t))^f dq = t^(-s-1) (1-t)^(-f) B(s+1, f+1) I_t(s+1, f+1)
    uniform = -(s + 1) * math.log(t) - f * math.log1p(-t) + betaln(s + 1, f + 1) + _log(betainc(s + 1, f + 1, t))
    # at q = 0: ((1-0)/(1-t))^f if nothing diverged, else 0
    never = np.where(s == 0, -f * math.log1p(-t), -np.inf)
    both = np.logaddexp(never, uniform) - math.log(2)
    return both if isinstance(both, np.ndarray) and both.ndim else float(both)  # type: ignore[return-value]


def log_evidence_above(diverged: N, seeds: N, tolerance: float) -> N:
    """log of the test martingale against "the rate is at most `tolerance`": the mixture over
    rates q in [tolerance, 1]."""
    s, f, t = diverged, seeds - diverged, tolerance
    # (1/(1-t)) ∫_t^1 (q/t)^s ((1-q)/(1-t))^f dq = t^(-s) (1-t)^(-f-1) B(s+1, f+1) (1 - I_t(s+1, f+1))
    return -s * math.log(t) - (f + 1) * math.log1p(-t) + betaln(s + 1, f + 1) + _log(betaincc(s + 1, f + 1, t))


def stability(diverged: int, seeds: int, tolerance: float, alpha: float = 0.05) -> Verdict:
    """Stable when the evidence against a rate of at least `tolerance` reaches 1/alpha; unstable
    when the evidence against a rate of at most it does; else undecided (train more seeds)."""
    if seeds == 0:
        return Verdict.UNDECIDED
    threshold = -math.log(alpha)
    if log_evidence_below(diverged, seeds, tolerance) >= threshold:
        return Verdict.STABLE
    if log_evidence_above(diverged, seeds, tolerance) >= threshold:
        return Verdict.UNSTABLE
    return Verdict.UNDECIDED


def fewer_divergences(only_baseline: int, only_other: int, alpha: float = 0.05) -> bool:
    """Whether the discordant pairs show the other arm diverges less than the baseline: of the
    seeds where exactly one arm diverged, `only_baseline` diverged without the other doing so.
    Under "no difference or worse" each discordant seed is the baseline's with probability at
    most 1/2; the mixture is over q in [1/2, 1]."""
    a, b = only_baseline, only_other
    # 2 ∫_{1/2}^1 (2q)^a (2(1-q))^b dq = 2^(a+b+1) B(a+1, b+1) (1 - I_{1/2}(a+1, b+1))
    log_m = (a + b + 1) * math.log(2) + betaln(a + 1, b + 1) + _log(betaincc(a + 1, b + 1, 0.5))
    return bool(log_m >= -math.log(alpha))


@lru_cache(maxsize=256)
def fewest_for_stable(tolerance: float, alpha: float = 0.05, diverged: int = 0) -> int:
    """The fewest seeds that, with `diverged` of them diverging, show a rate under `tolerance`
    (68 at 5% and alpha 5% with none, 153 with one)."""
    enough = lambda n: log_evidence_below(diverged, n, tolerance) >= -math.log(alpha)  # noqa: E731
    low, high = diverged, diverged + 1
    while not enough(high):
        low, high = high, 2 * high
    while high - low > 1:  # each seed that does not diverge adds evidence
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def out_of_reach(diverged: int, seeds: int, tolerance: float, alpha: float, most: int) -> bool:
    """Whether an undecided cell would still be undecided at `most` seeds were it to diverge from
    here on at the rate it has so far, one divergence taken as bad luck: then the seeds up to
    `most` would most likely be spent for nothing, and the cell stops where it is, undecided
    (stochastic curtailment). Only once it has had the seeds that show a cell with no divergence
    stable (fewest_for_stable). The divergence taken off keeps going a cell whose few divergences
    came early: a cell diverging at 1% is still shown stable about nine times in ten. Stopping
    early never makes a verdict wrong: a cell that stops declares nothing, and every test here
    holds whenever the sweep stops."""
    if seeds < fewest_for_stable(tolerance, alpha) or seeds >= most:
        return False
    projected = round(max(diverged - 1, 0) * most / seeds)
    return stability(projected, most, tolerance, alpha) is Verdict.UNDECIDED


def next_batch(diverged: N, seen: N, tolerance: float, alpha: float, batch: int) -> N:
    """How many seeds an undecided cell should get next: `batch`, or, while it looks like a cell
    that never diverges, exactly as many as it then needs to be shown stable, so that it is decided
    at the next look instead of several rounds later. A cell looks so while none of its seeds
    has diverged, and still after one divergence once it has had the seeds a clean cell needs (one
    divergence taken as bad luck, as out_of_reach takes it): 1 of 68 gets 85 more, to 153, where
    batches would take six rounds. The tests stay valid: they hold for any rule of when to look,
    this one included."""
    clean = fewest_for_stable(tolerance, alpha)
    once = fewest_for_stable(tolerance, alpha, 1)
    jump = np.where(diverged == 0, clean - seen, np.where((diverged == 1) & (seen >= clean), once - seen, 0))
    more = np.maximum(batch, jump)
    return more if isinstance(diverged, np.ndarray) else int(more)
