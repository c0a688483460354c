"""Statistics with literal numbers, checked by hand.

The Wilson bounds were computed independently of the implementation, as the roots of
(n + z²)p² − (2k + z²)p + k²/n = 0 (the interval's defining quadratic).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.analysis.statistics import (
    Estimate,
    PairedComparison,
    Telemetry,
    Unavailable,
    clipping_telemetry,
    converged_fraction,
    expected_steps_to_success,
    histogram_quantile,
    mcnemar_exact,
    median_steps_converged_only,
    median_steps_to_target,
    merge_histograms,
    min_runs_for_tolerance,
    paired_comparison,
    resample_medians,
    stable_learning_rate,
    steps_to_target,
    wilson_interval,
)
from trainers.norm_histogram import bin_centre


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


# ---- paired comparison, convergence speed, cost, frontier, telemetry (numbers checked by hand) ----


@pytest.mark.parametrize(("b", "c", "p"), [
    (0, 0, 1.0),
    (0, 5, 0.0625),                # 2 · (1/2)^5
    (1, 9, 22 / 1024),             # 2 · (C(10,0) + C(10,1)) / 2^10
    (3, 3, 1.0),                   # 2 · 42/64 > 1, capped
    (2, 10, 2 * 79 / 4096),        # 2 · (1 + 12 + 66) / 2^12
])
def test_exact_mcnemar(b: int, c: int, p: float) -> None:
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-12)
    assert mcnemar_exact(c, b) == pytest.approx(p, rel=1e-12)


def test_paired_comparison_counts_discordant_seeds_only() -> None:
    none = {0: True, 1: True, 2: True, 3: False, 4: True, 5: False}
    norm = {0: False, 1: False, 2: True, 3: False, 4: False, 6: True}  # seed 6 has no partner yet
    result = paired_comparison(none, norm)
    assert isinstance(result, PairedComparison)
    assert (result.pairs, result.reference_only, result.arm_only) == (5, 3, 0)
    assert (result.reference_rate, result.arm_rate) == (4 / 5, 1 / 5)
    assert result.rate_difference == pytest.approx(-3 / 5)
    assert result.p_value == 0.25  # 2 · (1/2)^3
    assert isinstance(paired_comparison({0: True}, {1: False}), Unavailable)


def test_converged_fraction_keeps_unconverged_runs_in_the_denominator() -> None:
    steps = [100, 250, None, 400, None]  # two runs diverged or ran out of budget
    assert converged_fraction(steps, [0, 99, 100, 300, 400, 10_000]) == [0.0, 0.0, 0.2, 0.4, 0.6, 0.6]
    assert converged_fraction([], [10]) == [0.0]


def test_steps_to_target_needs_half_converged_and_bootstraps_reproducibly() -> None:
    refused = steps_to_target([100, None, None])
    assert refused == Unavailable("only 1 of 3 runs reached the target: the median run did not")
    # exactly half: the median falls between a converged run and one that never converged
    assert steps_to_target([100, None]) == Unavailable("only 1 of 2 runs reached the target: the median run did not")
    assert steps_to_target([]) == Unavailable("no runs have finished")
    assert steps_to_target([300] * 8) == Estimate(300.0, 300.0, 300.0)
    # median of (100, 200, 300, inf) is 250; resamples mostly hold 2+ of the 3 finite values
    estimate = steps_to_target([100, 200, 300, None], seed=7)
    assert isinstance(estimate, Estimate) and estimate.value == 250.0
    assert estimate.low == 100.0 and estimate.high == math.inf
    assert steps_to_target([100, 200, 300, None], seed=7) == estimate


def test_resample_medians_from_counts_are_numpys_medians() -> None:
    """The counting path gives np.median's numbers exactly, odd and even sizes, infinities (runs
    that never converged), a single distinct value, and where the values barely repeat."""
    rng = np.random.default_rng(11)
    for n in (1, 2, 7, 8, 40, 41, 500, 501, 2500):
        for _ in range(4 if n < 1000 else 1):
            never = rng.random()
            values = np.array([math.inf if rng.random() < never else float(rng.integers(1, 60) * 50)
                               for _ in range(n)])
            draws = rng.integers(0, n, size=(300, n))
            assert np.array_equal(resample_medians(values, draws), np.median(values[draws], axis=1))
    same = np.full(9, 150.0)
    assert np.array_equal(resample_medians(same, rng.integers(0, 9, size=(5, 9))), np.full(5, 150.0))


def test_median_over_converged_runs_only() -> None:
    assert median_steps_converged_only([100, None, 300, None, None]) == 200.0
    assert median_steps_converged_only([None]) == Unavailable("no run reached the target")


def test_expected_steps_to_one_good_model_with_restarts() -> None:
    assert expected_steps_to_success([100, 200, 300], successes=1) == 600.0  # 200 / (1/3)
    assert expected_steps_to_success([500, 500], successes=2) == 500.0
    assert expected_steps_to_success([7, 3], successes=0) == math.inf
    assert expected_steps_to_success([], successes=0) == Unavailable("no runs have finished")


def test_stable_learning_rate_uses_the_wilson_upper_bound() -> None:
    # 0/73: upper = z²/(73 + z²) = 0.049993 < 5%; 0/72: 0.050658
    assert min_runs_for_tolerance(0.05) == 73
    assert wilson_interval(0, 73)[1] < 0.05 < wilson_interval(0, 72)[1]
    cells = {0.1: (0, 100), 0.3: (1, 100), 0.6: (40, 100)}
    # 1/100: upper 0.0545 > 5%, so 0.3 is not stable at 5% but is at 10%
    assert stable_learning_rate(cells) == 0.1
    assert stable_learning_rate(cells, tolerance=0.10) == 0.3
    assert stable_learning_rate({0.1: (0, 16)}) == Unavailable(
        "with 16 runs per learning rate even no divergence leaves an upper bound above 5%; it takes at least 73 seeds")
    assert stable_learning_rate({0.1: (50, 100)}) == Unavailable(
        "every learning rate's divergence upper bound is at or above 5%")


def test_histogram_quantiles_are_nearest_rank_bin_centres() -> None:
    # 10 values: bins 0 (x4), 3 (x5), 20 (x1); ranks 5 -> bin 3, 9 -> bin 3, 10 -> bin 20
    histogram = {0: 4, 3: 5, 20: 1}
    assert histogram_quantile(histogram, 0.4) == bin_centre(0)
    assert histogram_quantile(histogram, 0.5) == bin_centre(3) == pytest.approx(10 ** (3.5 / 20))
    assert histogram_quantile(histogram, 0.9) == bin_centre(3)
    assert histogram_quantile(histogram, 0.99) == bin_centre(20)
    assert merge_histograms([{0: 1, 3: 2}, {3: 3, 20: 1}]) == {0: 1, 3: 5, 20: 1}


def test_clipping_telemetry() -> None:
    t = clipping_telemetry({0: 4, 3: 5, 20: 1}, steps=12, clipped_steps=3, max_norms=[10.5, 3.0],
                           divergence_norms=[4.0, math.nan, 2.0])
    assert isinstance(t, Telemetry)
    assert t.steps == 12 and t.clipped_fraction == 0.25
    assert t.norm_p50 == t.norm_p90 == pytest.approx(1.4962, abs=1e-4)  # 10^(3.5/20)
    assert t.norm_p99 == 10.5  # bin 20's centre, 10.59, is capped at the exact maximum
    assert t.norm_max == 10.5
    assert t.divergence_norm == 4.0 and t.diverged_with_norm == 3  # median of 2, 4, NaN (as inf)
    none_diverged = clipping_telemetry({0: 1}, steps=1, clipped_steps=0, max_norms=[1.0], divergence_norms=[])
    assert isinstance(none_diverged, Telemetry)
    assert none_diverged.divergence_norm == Unavailable("no run diverged after an update")
    assert clipping_telemetry({}, steps=3, clipped_steps=0, max_norms=[math.inf], divergence_norms=[]) == Unavailable(
        "no update with a finite gradient norm has been recorded")
