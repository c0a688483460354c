"""service/analysis/planning.py against simulation: the exact power of the paired test is what
repeated paired experiments show."""

from __future__ import annotations

import numpy as np
import pytest

from service.analysis.planning import paired_power, seeds_for_power, seeds_to_decide
from service.analysis.statistics import mcnemar_exact, wilson_interval


@pytest.mark.parametrize(("none_rate", "arm_rate", "seeds"), [(0.3, 0.05, 40), (0.3, 0.0, 20), (0.1, 0.05, 100)])
def test_the_power_is_what_simulated_experiments_find(none_rate: float, arm_rate: float, seeds: int) -> None:
    rng = np.random.default_rng(7)
    trials = 2000
    none, arm = rng.random((trials, seeds)) < none_rate, rng.random((trials, seeds)) < arm_rate
    found = sum(mcnemar_exact(int((n & ~a).sum()), int((a & ~n).sum())) <= 0.05 for n, a in zip(none, arm))
    # Within 4 standard deviations of a share measured on 2,000 experiments.
    assert abs(found / trials - paired_power(none_rate, arm_rate, seeds)) < 4 * (0.25 / trials) ** 0.5


def test_seeds_for_power_is_the_first_count_with_that_power() -> None:
    n = seeds_for_power(0.3, 0.05)
    assert n is not None and paired_power(0.3, 0.05, n) >= 0.8 > paired_power(0.3, 0.05, n - 1)
    assert seeds_for_power(0.2, 0.2) is None


def test_seeds_to_decide_clears_the_tolerance_at_the_observed_rate() -> None:
    n = seeds_to_decide(0.02, 0.05)
    assert n is not None and wilson_interval(round(0.02 * n), n)[1] < 0.05
    assert seeds_to_decide(0.0, 0.05) == 73 and seeds_to_decide(0.05, 0.05) is None
