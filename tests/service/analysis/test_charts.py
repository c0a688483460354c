"""Bands, samples and thinned curves for a cell's chart (service/analysis/charts.py)."""

from __future__ import annotations

import math
import random

import numpy as np

from service.analysis.charts import band, sample, thin


def test_bands_are_numpys_quantiles_over_the_finite_values_at_each_step() -> None:
    rng = random.Random(0)
    curves = []
    for _ in range(40):
        last = rng.randrange(3, 30)
        values = [rng.lognormvariate(0, 1) for _ in range(last)]
        values[-1] = rng.choice([values[-1], math.nan, math.inf, None])  # a divergence step
        curves.append((list(range(0, 2 * last, 2)), values))
    got = band(curves, width=1000)
    for i, step in enumerate(got.steps):
        at = [v[step // 2] for s, v in curves if step in s]
        finite = [v for v in at if v is not None and math.isfinite(v)]
        assert got.seeds[i] == len(finite)
        for q, values in got.quantiles.items():
            assert values[i] == np.quantile(finite, q)
    assert got.steps == sorted({s for steps, values in curves for s, v in zip(steps, values)
                                if v is not None and math.isfinite(v)})
    narrow = band(curves, width=5)  # at most five steps, the first and last among them
    assert len(narrow.steps) == 5 and narrow.steps[0] == got.steps[0] and narrow.steps[-1] == got.steps[-1]
    assert set(narrow.steps) <= set(got.steps)
    assert band([([0], [None]), ([0, 1], [math.nan, math.inf])], width=10).steps == []


def test_a_sample_is_even_and_the_same_every_time() -> None:
    assert sample(5, 10) == [0, 1, 2, 3, 4] and sample(5, 0) == []
    assert sample(101, 5) == [0, 25, 50, 75, 100] == sample(101, 5)


def test_a_thinned_curve_keeps_every_extreme_a_chart_would_show() -> None:
    rng = np.random.default_rng(1)
    n, width = 10_000, 100
    loss = rng.lognormal(0, 0.3, n).tolist()
    norm: list[float | None] = rng.lognormal(0, 0.3, n).tolist()
    loss[5_000] = 1e6  # a spike
    norm[7_777] = 1e9  # the peak
    loss[-1], norm[-1] = math.nan, None  # the divergence step: NaN loss, no norm computed
    norm[3_000] = math.inf
    keep = thin(list(range(n)), loss, norm, width=width)
    assert len(keep) <= 4 * width + 4 and keep == sorted(set(keep))
    assert {0, n - 1, 5_000, 7_777, 3_000} <= set(keep)
    for lo in range(0, n, n // width):  # every bucket's lowest and highest loss
        bucket = range(lo, lo + n // width)
        finite = [i for i in bucket if math.isfinite(loss[i])]
        assert min(finite, key=lambda i: loss[i]) in keep and max(finite, key=lambda i: loss[i]) in keep
    assert thin([0, 1, 2], [1.0, 2.0, 3.0], width=100) == [0, 1, 2]  # short curves stay whole
