"""Statistics of sweep outcomes: pure functions, no database, no I/O."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

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
    infinitely slow. Defined only when at least half the runs converged; None otherwise.

    `steps` holds each run's converged_at_step, None for runs that did not converge.
    """
    n = len(steps)
    if n == 0:
        return None
    ordered = sorted(math.inf if s is None else float(s) for s in steps)
    if n % 2:
        median = ordered[n // 2]
    else:
        median = (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return None if math.isinf(median) else median
