"""Exact tests of yes/no outcomes (did a seed diverge?), one-sided because an alert asks whether
training got worse, not whether it changed:
- the same seeds on both sides (a schedule with `seed_policy: same`): each seed is a pair, and the
  exact one-sided McNemar test asks whether more seeds flipped to diverging than back;
- different seeds (`seed_policy: fresh`): Boschloo's exact test of two proportions. It is
  uniformly more powerful than Fisher's, which conditions on both margins as if the total number
  of divergences had been fixed in advance (it was not). Its cost grows with the product of the
  two sample sizes (1 s at 512 runs a side, 8 s at 1,024), so above BOSCHLOO_MAX_RUNS runs a side
  Fisher's test, conservative and fast, stands in, and the answer says which ran;
- across many cells, Benjamini–Hochberg controls the false discovery rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from scipy.stats import binom, boschloo_exact, false_discovery_control, fisher_exact

if TYPE_CHECKING:
    from service.analysis.comparison import Side

BOSCHLOO_MAX_RUNS = 128


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
