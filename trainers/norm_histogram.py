"""A mergeable histogram of pre-clip gradient norms, one per run, over every step it trained.

Runs keep only every `record_every`-th step as a point, and quantiles do not add up across runs;
counts in fixed logarithmic bins do. So each run counts its finite norms per bin, and a cell's
quantiles come from the summed counts. Bins are 1/20 of a decade wide: the geometric centre of a
bin is within 6% (10^(1/40) − 1) of any norm in it.
"""

from __future__ import annotations

import math

BINS_PER_DECADE = 20
# Norms below this (a zero gradient) share the lowest bin.
SMALLEST = 1e-30


def norm_bin(norm: float) -> int:
    """The bin of a finite, non-negative norm: floor(20 · log10(norm))."""
    return math.floor(BINS_PER_DECADE * math.log10(max(norm, SMALLEST)))


def bin_centre(index: int) -> float:
    """The geometric centre of a bin: the value a quantile falling in it is reported as."""
    return 10 ** ((index + 0.5) / BINS_PER_DECADE)
