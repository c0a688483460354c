"""What a chart of a cell's seeds can show: quantile bands over the seeds, and curves thinned to
the chart's width with their extremes kept.

A thousand seeds' curves are a thousand lines nobody can read, shipped point by point. The chart
shows instead, step by step, the 10th, 50th and 90th percentile over the seeds that have a point
there (`band`), every diverged seed's curve, and an even sample of the others (`sample`), each
curve cut to about two points per pixel (`thin`): per bucket of steps its lowest and highest
value, so a spike survives; its first and last point (the last is the divergence step); its peak;
and every non-finite value (a NaN or infinite loss or norm is the news).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class Band:
    """Per step: the seeds with a finite value there and the quantiles of their values."""

    steps: list[int]
    seeds: list[int]
    quantiles: dict[float, list[float]]


def band(curves: Sequence[tuple[Sequence[int], Sequence[float | None]]], width: int) -> Band:
    """The QUANTILES over seeds of `curves` (each (steps, values); None, NaN and infinite values
    left out), at each step where a seed has a finite value; at most `width` steps, evenly spaced
    in the order they come, when there are more. Quantiles interpolate linearly, as numpy's do."""
    steps = np.fromiter((s for c_steps, _ in curves for s in c_steps), dtype=np.int64)
    values = np.fromiter((np.nan if v is None else v for _, c_values in curves for v in c_values), dtype=np.float64)
    finite = np.isfinite(values)
    steps, values = steps[finite], values[finite]
    if not len(steps):
        return Band([], [], {q: [] for q in QUANTILES})
    order = np.lexsort((values, steps))
    steps, values = steps[order], values[order]
    at, start, count = np.unique(steps, return_index=True, return_counts=True)
    keep = _even(len(at), width)
    at, start, count = at[keep], start[keep], count[keep]
    quantiles = {}
    for q in QUANTILES:
        position = (count - 1) * q
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, count - 1)
        fraction = position - low
        quantiles[q] = (values[start + low] + (values[start + high] - values[start + low]) * fraction).tolist()
    return Band(at.tolist(), count.tolist(), quantiles)


def _even(n: int, k: int) -> np.ndarray:
    """Indices of at most `k` of `n` items, evenly spaced, the first and last among them."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(k, 2)).round().astype(np.int64))


def sample(n: int, k: int) -> list[int]:
    """`k` of `n` items evenly spread (all of them when n <= k): the same ones every time."""
    return _even(n, k).tolist() if k > 0 else []


def thin(steps: Sequence[int], *series: Sequence[float | None], width: int) -> list[int]:
    """The indices of a curve's points to draw at `width` buckets: per bucket the lowest and highest
    value of each series, the first and last point, each series' peak, and every non-finite value.
    All of them when there are at most twice `width`."""
    n = len(steps)
    if n <= 2 * width:
        return list(range(n))
    keep = {0, n - 1}
    bucket = np.minimum((np.arange(n) * width) // n, width - 1)
    for values in series:
        y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        finite = np.isfinite(y)
        keep.update(np.flatnonzero(~finite & np.array([v is not None for v in values])).tolist())
        at = np.flatnonzero(finite)
        if not len(at):
            continue
        keep.add(int(at[np.argmax(y[at])]))
        # Sorted by bucket, then value: each bucket's first entry is its lowest, its last its highest.
        order = np.lexsort((y[at], bucket[at]))
        first = np.r_[0, np.flatnonzero(np.diff(bucket[at][order])) + 1]
        last = np.r_[first[1:] - 1, len(order) - 1]
        keep.update(at[order[first]].tolist())
        keep.update(at[order[last]].tolist())
    return sorted(keep)
