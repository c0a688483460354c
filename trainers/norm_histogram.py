"""A mergeable histogram of pre-clip gradient norms, one per run, over every step it trained.

Runs keep only every `record_every`-th step as a point, and quantiles do not add up across runs;
counts in fixed logarithmic bins do. So each run counts its finite norms per bin, and a cell's
quantiles come from the summed counts. Bins are 1/20 of a decade wide: the geometric centre of a
bin is within 6% (10^(1/40) − 1) of any norm in it.
"""

from __future__ import annotations

import torch

BINS_PER_DECADE = 20
# Norms below this (a zero gradient) share the lowest bin.
SMALLEST = 1e-30


def norm_bins(norms: torch.Tensor) -> torch.Tensor:
    """The bins (int64) of finite, non-negative norms: floor(20 · log10(norm)), computed in float64.
    The one rule for a single run and a chunk of seeds alike, so both bin a norm the same way."""
    return torch.floor(BINS_PER_DECADE * torch.log10(norms.double().clamp(min=SMALLEST))).long()


def norm_bin(norm: float) -> int:
    """The bin of one finite, non-negative norm."""
    return int(norm_bins(torch.tensor([norm], dtype=torch.float64))[0])


def bin_centre(index: int) -> float:
    """The geometric centre of a bin: the value a quantile falling in it is reported as."""
    return 10 ** ((index + 0.5) / BINS_PER_DECADE)
