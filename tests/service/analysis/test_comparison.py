"""The regression tests as pure functions with literal counts: one-sided exact McNemar, Boschloo
against SciPy's own reference values, Benjamini–Hochberg, and the decision rule's edge cases."""

from __future__ import annotations

import math

import pytest

from service.analysis.comparison import CellRuns, Side, Thresholds, compare, environment_change, speed_change
from service.analysis.exact_tests import (
    BOSCHLOO_MAX_RUNS,
    benjamini_hochberg,
    mcnemar_one_sided,
    two_proportions_one_sided,
)


def cell(diverged: list[bool] | dict[int, bool], *, lr: float = 0.1, clipping: str = "none",
         method: str | None = None, steps: list[int | None] | None = None, config_hash: str | None = None,
         index: int = 0) -> CellRuns:
    by_seed = diverged if isinstance(diverged, dict) else dict(enumerate(diverged))
    converged = dict(zip(by_seed, steps)) if steps is not None else {s: None for s in by_seed}
    return CellRuns(config_hash=config_hash or f"{lr}-{clipping}", cell_index=index, lr=lr, clipping=clipping,
                    clip_method=method or clipping.split("(")[0], diverged=by_seed, converged_at=converged)


def test_mcnemar_one_sided_is_the_binomial_tail_of_the_discordant_pairs() -> None:
    # 5 of 5 discordant pairs the worse way: (1/2)^5.
    assert mcnemar_one_sided(5, 0) == pytest.approx(1 / 32)
    # 6 of 8: P(X >= 6 | n=8) = (28 + 8 + 1) / 256.
    assert mcnemar_one_sided(6, 2) == pytest.approx(37 / 256)
    assert mcnemar_one_sided(0, 5) == pytest.approx(1.0)
    assert mcnemar_one_sided(0, 0) == 1.0  # no discordant pairs: no evidence
    with pytest.raises(ValueError):
        mcnemar_one_sided(-1, 2)


def test_boschloo_matches_scipys_documented_example_and_fisher_stands_in_for_large_samples() -> None:
    # SciPy's boschloo_exact docstring: [[74, 31], [43, 32]], alternative="greater": statistic
    # 0.0483 (Fisher's one-sided p), p-value 0.0355, Boschloo's the smaller.
    test, p = two_proportions_one_sided(Side(74, 117), Side(31, 63))
    assert test == "boschloo" and round(p, 4) == 0.0356  # the docstring prints 0.0355, truncated
    big = BOSCHLOO_MAX_RUNS + 1
    test, p = two_proportions_one_sided(Side(40, big), Side(10, big))
    assert test == "fisher" and p < 1e-4
    assert two_proportions_one_sided(Side(0, 16), Side(5, 16))[1] == pytest.approx(1.0)


def test_benjamini_hochberg_adjusts_in_the_given_order() -> None:
    # p = (0.01, 0.04, 0.03, 0.005): ranked 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([]) == []


def test_same_seeds_are_paired_and_the_flipped_seeds_listed() -> None:
    before = cell([False] * 16)
    now = cell([s in (1, 4, 7, 9, 12, 13) for s in range(16)])
    result = compare([now], [before], Thresholds())
    [change] = result.divergence
    assert change.test == "mcnemar" and change.flipped == (1, 4, 7, 9, 12, 13) and change.recovered == ()
    assert change.p_worse == pytest.approx(1 / 64) and change.q_worse == pytest.approx(1 / 64)
    [regression] = result.regressions
    assert regression.kind == "divergence"
    assert regression.text == "divergence at lr 0.1, none: 0/16 → 6/16 (q = 0.016)"
    assert regression.evidence["flipped_seeds"] == [1, 4, 7, 9, 12, 13]
    assert regression.evidence["current"]["interval"][0] > 0.15


def test_no_discordant_pairs_is_no_change() -> None:
    runs = [s % 3 == 0 for s in range(32)]
    result = compare([cell(runs)], [cell(runs)], Thresholds())
    assert result.divergence[0].p_worse == 1.0 and not result.regressions and not result.improvements


def test_a_significant_change_below_min_effect_is_not_a_regression() -> None:
    # 10 flips of 400 seeds: p < 0.001, but the rate rose by 2.5 points only.
    before = cell([False] * 400)
    now = cell([s < 10 for s in range(400)])
    result = compare([now], [before], Thresholds(min_effect=0.10))
    assert result.divergence[0].p_worse < 0.001 and not result.regressions
    assert compare([now], [before], Thresholds(min_effect=0.02)).regressions


def test_fdr_control_across_cells_can_keep_a_lone_p_under_alpha_from_alerting() -> None:
    # 5 of 5 flips: p = 1/32 = 0.031 alone; with 9 unchanged cells beside it, q = 0.31.
    flipped = {s: s < 5 for s in range(20)}
    lone = compare([cell(flipped)], [cell([False] * 20)], Thresholds())
    assert lone.regressions
    quiet = [cell([False] * 20, lr=lr) for lr in (1, 2, 3, 4, 5, 6, 7, 8, 9)]
    crowded = compare([cell(flipped), *quiet], [cell([False] * 20), *quiet], Thresholds())
    assert crowded.divergence[0].q_worse == pytest.approx(10 / 32) and not crowded.regressions


def test_different_seeds_use_the_two_proportion_test() -> None:
    before = cell({s: s < 2 for s in range(64)})
    now = cell({s: s < 64 + 19 for s in range(64, 128)})
    result = compare([now], [before], Thresholds())
    [change] = result.divergence
    assert change.test == "boschloo" and change.flipped == ()
    assert (change.baseline.diverged, change.current.diverged) == (2, 19)
    assert result.regressions[0].text.startswith("divergence at lr 0.1, none: 2/64 → 19/64 (q = ")


def test_improvements_are_found_the_other_way() -> None:
    result = compare([cell([False] * 16)], [cell([s < 8 for s in range(16)])], Thresholds())
    assert not result.regressions
    [improvement] = result.improvements
    assert improvement.kind == "improvement" and improvement.measure == "divergence"


def test_a_cell_on_one_side_only_is_reported_not_matched() -> None:
    shared = cell([False] * 8, lr=0.1)
    new = cell([True] * 8, lr=0.3, index=1)
    old = cell([False] * 8, lr=0.01, index=2)
    result = compare([shared, new], [shared, old], Thresholds())
    assert [c.lr for c in result.divergence] == [0.1]
    assert [c.lr for c in result.only_current] == [0.3] and [c.lr for c in result.only_baseline] == [0.01]
    assert not result.regressions  # 0.3 diverging everywhere is not compared with anything


def test_clipping_that_stops_protecting_is_a_regression_even_below_min_effect() -> None:
    before = cell([False] * 64, clipping="norm(max_norm=1.0)", method="norm")
    now = cell([s == 3 for s in range(64)], clipping="norm(max_norm=1.0)", method="norm")
    kinds = [f.kind for f in compare([now], [before], Thresholds()).regressions]
    assert kinds == ["protection"]
    # The unclipped arm holding 0 is not "protection": there is no clipping to stop protecting.
    assert not compare([cell([s == 3 for s in range(64)])], [cell([False] * 64)], Thresholds()).regressions


def test_a_fallen_stability_frontier_is_a_regression() -> None:
    stable, unstable = [False] * 80, [s < 20 for s in range(80)]
    before = [cell(stable, lr=0.1, index=0), cell(stable, lr=0.3, index=1)]
    now = [cell(stable, lr=0.1, index=0), cell(unstable, lr=0.3, index=1)]
    result = compare(now, before, Thresholds())
    frontier = [f for f in result.regressions if f.kind == "frontier"]
    assert len(frontier) == 1 and frontier[0].evidence["baseline_lr"] == 0.3
    assert frontier[0].evidence["current_lr"] == 0.1


def test_slowdown_needs_an_interval_above_one_and_the_minimum_ratio() -> None:
    steps_before = [100 + s for s in range(32)]
    slower = [200 + s for s in range(32)]
    change = speed_change(cell([False] * 32, steps=slower), cell([False] * 32, steps=steps_before))
    assert change is not None and change.ratio == pytest.approx(215.5 / 115.5) and change.low > 1
    result = compare([cell([False] * 32, steps=slower)], [cell([False] * 32, steps=steps_before)], Thresholds())
    assert [f.kind for f in result.regressions] == ["slowdown"]
    assert not compare([cell([False] * 32, steps=slower)], [cell([False] * 32, steps=steps_before)],
                       Thresholds(min_slowdown=2.0)).regressions
    # Where the median run did not converge on one side there is no ratio to speak of.
    assert speed_change(cell([True] * 4), cell([False] * 4, steps=[1, 2, 3, 4])) is None
    # Unconverged runs count as infinitely slow in the resamples, and the interval says so.
    half = speed_change(cell([False] * 8, steps=[10, 10, 10, 10, 10, None, None, None]),
                        cell([False] * 8, steps=[10] * 8))
    assert half is not None and math.isinf(half.high)


def test_thresholds_refuse_nonsense() -> None:
    for bad in ({"alpha": 0}, {"min_effect": 1.5}, {"min_slowdown": 0.5}, {"consecutive": 0}, {"tolerance": 1}):
        with pytest.raises(ValueError):
            Thresholds(**bad)


def test_environment_change_lists_what_differs() -> None:
    assert environment_change({"torch": "2.13.0", "ray": "2.40"}, {"torch": "2.14.0", "ray": "2.40"}) == [
        "torch 2.13.0 → 2.14.0"]
    assert environment_change({"task_plugin": None}, {"task_plugin": "x 1.0"}) == ["task_plugin none → x 1.0"]
    assert environment_change(None, {"torch": "2.13.0"}) == []
