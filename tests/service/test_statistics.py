"""Statistics with literal numbers, checked by hand.

The Wilson bounds were computed independently of the implementation, as the roots of
(n + z²)p² − (2k + z²)p + k²/n = 0 (the interval's defining quadratic).
"""

from __future__ import annotations

import math

import pytest

from service.statistics import median_steps_to_target, wilson_interval


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # p=0.5, n=10: centre 0.5, half-width z*sqrt(.025+z²/400)/(1+z²/10) = 0.2813...
    (5, 10, 0.236593, 0.763407),
    # 0/16: lower bound exactly 0, upper z²/(n+z²) = 3.8415/19.8415
    (0, 16, 0.0, 0.193608),
    (16, 16, 0.806392, 1.0),
    (1, 1, 0.206549, 1.0),
    (9, 16, 0.331786, 0.769013),
])
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-6)
    assert hi == pytest.approx(high, abs=1e-6)


def test_wilson_upper_bound_at_zero_is_z_squared_over_n_plus_z_squared() -> None:
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0, 16)[1] == pytest.approx(z2 / (16 + z2), rel=1e-12)


@pytest.mark.parametrize(("k", "n"), [(1, 0), (-1, 5), (6, 5)])
def test_wilson_rejects_impossible_counts(k: int, n: int) -> None:
    with pytest.raises(ValueError):
        wilson_interval(k, n)


def test_median_counts_unconverged_runs_as_never() -> None:
    # sorted: 100, 200, 300, inf, inf -> median 300
    assert median_steps_to_target([300, None, 100, None, 200]) == 300
    # sorted: 100, 200, inf, inf -> median (200 + inf) / 2 = inf -> undefined
    assert median_steps_to_target([100, None, 200, None]) is None
    assert median_steps_to_target([100, 200, 300, None]) == 250
    assert median_steps_to_target([]) is None
    assert median_steps_to_target([None]) is None
    assert not math.isnan(median_steps_to_target([7]) or math.nan)
