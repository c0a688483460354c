"""The headline sentence, from hand-made cell statistics (numbers checked by hand)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.analysis.headline import headline
from service.analysis.statistics import Estimate, Unavailable, paired_comparison, wilson_interval
from service.analysis.summary import ArmFrontier, CellSummary

NORM = "norm(max_norm=1.0)"


def cell(index: int, lr: float, clipping: str, diverged: int, n: int = 16, *,
         steps: Estimate | Unavailable = Unavailable("nothing converged"),
         vs: dict[int, bool] | None = None, reference: dict[int, bool] | None = None) -> CellSummary:
    method = "none" if clipping == "none" else clipping.split("(")[0]
    seeds = {s: s < diverged for s in range(n)}
    return CellSummary(
        cell_index=index, lr=lr, clipping=clipping, clip_method=method, runs=n, finished=n, diverged=diverged,
        converged=0, divergence_rate=diverged / n, divergence_ci=wilson_interval(diverged, n),
        median_steps_to_target=None, steps_to_target=steps, median_steps_converged_only=Unavailable("-"),
        expected_steps_with_restarts=Unavailable("-"),
        vs_baseline=None if method == "none" else paired_comparison(reference or {}, vs or seeds),
        converged_by_step=[], telemetry=Unavailable("-"))


def frontier(**stable: Any) -> list[ArmFrontier]:
    return [ArmFrontier(clipping=label, clip_method=label.split("(")[0], stable_lr=lr)
            for label, lr in stable.items()]


def grid(unclipped_at_05: int, clipped_at_05: int, **steps: Estimate | Unavailable) -> list[CellSummary]:
    none_05 = {s: s < unclipped_at_05 for s in range(16)}
    return [
        cell(0, 0.1, "none", 0, steps=steps.get("none_01", Unavailable("-"))),
        cell(1, 0.1, NORM, 0, reference={s: False for s in range(16)}),
        cell(2, 0.5, "none", unclipped_at_05),
        cell(3, 0.5, NORM, clipped_at_05, reference=none_05, steps=steps.get("norm_05", Unavailable("-"))),
    ]


def test_clipping_that_cuts_divergence_names_rates_intervals_p_frontier_and_speed() -> None:
    # 15/16 -> Wilson [71.7%, 98.9%]; 0/16 -> [0, 19.4%]; 15 discordant pairs: p = 2 / 2^15
    cells = grid(15, 0, none_01=Estimate(360.0, 300.0, 420.0), norm_05=Estimate(200.0, 150.0, 260.0))
    text = headline(cells, frontier(**{"none": 0.1, NORM: 0.5}), 0.2)
    assert text == ("norm(max_norm=1.0) cut divergence at lr 0.5 from 94% [72–99] to 0% [0–19] (p < 0.001); "
                    "highest stable lr 0.5 vs 0.1; 1.8× fewer steps to target.")


def test_a_weak_effect_is_called_not_significant_and_missing_speed_says_why() -> None:
    # 3 discordant pairs: p = 2 · (1/2)^3 = 0.25
    text = headline(grid(3, 0), frontier(**{"none": 0.1, NORM: 0.5}), 0.2)
    assert text == ("norm(max_norm=1.0) cut divergence at lr 0.5 from 19% [7–43] to 0% [0–19] "
                    "(p = 0.25, not significant); highest stable lr 0.5 vs 0.1; "
                    "steps to target not compared (-).")


def test_no_cliff_and_no_help_are_said_plainly() -> None:
    assert headline(grid(0, 0), frontier(**{"none": 0.5, NORM: 0.5}), 0.2) == (
        "no run diverged without clipping at any learning rate tried: try larger learning rates; "
        "highest stable lr 0.5 vs 0.5; steps to target not compared (-).")
    same = grid(4, 4)
    assert headline(same, frontier(**{"none": 0.1, NORM: 0.1}), 0.2).startswith(
        "no clipping arm diverged less often than none at any learning rate; highest stable lr 0.1 vs 0.1")


def test_unstable_arms_give_the_reason() -> None:
    few = Unavailable("with 16 runs per learning rate even no divergence leaves an upper bound above 5%; "
                      "it takes at least 73 seeds")
    text = headline(grid(15, 0), frontier(**{"none": few, NORM: few}), 0.05)
    assert text.endswith("(p < 0.001); no stable learning rate at 5% (with 16 runs per learning rate even no "
                         "divergence leaves an upper bound above 5%; it takes at least 73 seeds).")
    only_clipped = headline(grid(15, 0), frontier(**{"none": Unavailable("x"), NORM: 0.5}), 0.2)
    assert only_clipped.endswith("; highest stable lr 0.5, while no lr was stable without clipping.")


def test_without_a_none_arm_only_the_frontier_is_told() -> None:
    cells = [cell(0, 0.1, NORM, 0), cell(1, 0.5, NORM, 9)]
    cells = [replace(c, vs_baseline=None) for c in cells]
    assert headline(cells, frontier(**{NORM: 0.1}), 0.2) == "highest stable lr at 20% tolerance: norm(max_norm=1.0) 0.1."
    assert headline(cells, frontier(**{NORM: Unavailable("x")}), 0.2) == (
        "no learning rate kept its divergence upper bound under 20% in any arm.")


def test_nothing_finished_has_no_headline() -> None:
    unfinished = [replace(c, finished=0) for c in grid(15, 0)]
    assert headline(unfinished, [], 0.05) is None


def test_a_running_sweep_says_its_answer_is_provisional_and_waits_for_enough_runs() -> None:
    cells = grid(15, 0)
    full = headline(cells, frontier(**{"none": 0.1, NORM: 0.5}), 0.2)
    so_far = headline(cells, frontier(**{"none": 0.1, NORM: 0.5}), 0.2, running=True)
    assert so_far == f"so far (64 of 64 runs): {full}"
    # Two of 80 runs in: the counts, and no rate read as an answer.
    thin = [replace(c, runs=20, finished=2 if i == 0 else 0, diverged=2 if i == 0 else 0)
            for i, c in enumerate(cells)]
    assert headline(thin, frontier(), 0.05, running=True) == (
        "so far 2 of 80 runs have finished (2 diverged); the answer waits until every cell has 8 (the thinnest "
        "has 0).")
