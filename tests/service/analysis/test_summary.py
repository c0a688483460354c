"""summarize(rows): per cell divergence, the paired comparison with the baseline, convergence
speed and clipping telemetry, from runs loaded on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.statistics import Estimate, PairedComparison, Telemetry, Unavailable
from service.analysis.summary import CellSummary, stability_frontier, summarize
from service.db.session import session_scope
from service.lifecycle.runs import fail_runs
from service.queries.sweeps import summary_rows
from tests.factories import SPEC, hand_made_sweep, make_sweep, report, store
from trainers.norm_histogram import bin_centre


def cells_of(factory: sessionmaker[Session], sweep_id: int) -> dict[int, CellSummary]:
    with session_scope(factory) as session:
        return {c.cell_index: c for c in summarize(summary_rows(session, sweep_id))}


def test_summary_has_clipping_telemetry_over_every_step(session_factory: sessionmaker[Session]) -> None:
    cells = cells_of(session_factory, hand_made_sweep(session_factory))
    unclipped = cells[2].telemetry
    assert isinstance(unclipped, Telemetry)
    # 10 binned norms and seed 1's NaN one; nearest ranks: p50 -> 6th (bin 20), p90 -> 10th (bin 32)
    assert unclipped.steps == 11 and unclipped.clipped_fraction == 0
    assert (unclipped.norm_p50, unclipped.norm_p90) == (bin_centre(20), bin_centre(32))
    assert unclipped.norm_p99 == bin_centre(32) and unclipped.norm_max == math.inf  # the NaN norm
    assert unclipped.divergence_norm == 40.0 and unclipped.diverged_with_norm == 3  # median of 7, 40, inf
    clipped = cells[3].telemetry  # one of three runs finished: telemetry covers the finished one
    assert isinstance(clipped, Telemetry)
    assert (clipped.steps, clipped.clipped_fraction, clipped.norm_max) == (10, 0.6, 12.0)
    assert clipped.norm_p50 == bin_centre(20) and clipped.norm_p99 == bin_centre(20)  # 11.2 < 12
    assert clipped.divergence_norm == Unavailable("no run diverged after an update")
    assert cells[0].telemetry == Unavailable(
        "no finished run has norm telemetry (runs stored before it was recorded have none)")


def test_summary_has_the_converged_fraction_by_step(session_factory: sessionmaker[Session]) -> None:
    cells = cells_of(session_factory, hand_made_sweep(session_factory))
    assert cells[1].converged_by_step == [(4, 1 / 3), (8, 2 / 3)]
    assert cells[2].converged_by_step == []


def test_a_cell_with_failed_or_cancelled_runs_is_finished(session_factory: sessionmaker[Session]) -> None:
    """Statistics over the trained runs are final once every run has an outcome, failed ones too."""
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [report(1, 0, outcome="converged", converged_at_step=4, steps_done=4),
                                      report(1, 1, outcome="converged", converged_at_step=8, steps_done=8)])
    with session_scope(session_factory) as session:
        fail_runs(session, sweep_id, 1, [2], "node lost")
    cell = cells_of(session_factory, sweep_id)[1]
    assert (cell.finished, cell.converged) == (2, 2)
    assert cell.median_steps_to_target == 6.0 and cell.median_steps_converged_only == 6.0
    assert isinstance(cell.steps_to_target, Estimate) and cell.steps_to_target.value == 6.0
    assert cell.expected_steps_with_restarts == 6.0


def test_summary_counts_divergence_per_cell_with_wilson_intervals(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 4})
    store(session_factory, sweep_id,
          [report(2, s, outcome="diverged", trigger="loss_explosion") for s in range(3)] + [report(2, 3)]
          + [report(1, s, outcome="converged", converged_at_step=10 * (s + 1)) for s in range(3)] + [report(1, 3)])
    cells = cells_of(session_factory, sweep_id)
    assert (cells[2].lr, cells[2].clipping, cells[2].diverged, cells[2].finished) == (0.5, "none", 3, 4)
    assert cells[2].divergence_rate == 0.75
    assert cells[2].divergence_ci == pytest.approx((0.300642, 0.954413), abs=1e-6)
    assert cells[1].converged == 3 and cells[1].median_steps_to_target == 25.0  # 10,20,30,inf
    assert cells[0].finished == 0 and cells[0].divergence_rate is None


def test_summary_compares_each_arm_with_the_baseline_on_the_same_seeds_and_finds_the_frontier(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 4})
    # cells: 0 = (0.1, none), 1 = (0.1, norm), 2 = (0.5, none), 3 = (0.5, norm)
    reports = [report(0, s) for s in range(4)]
    reports += [report(1, s, outcome="converged", converged_at_step=10 * (s + 1), steps_done=10 * (s + 1))
                for s in range(4)]
    reports += [report(2, s, outcome="diverged", trigger="loss_explosion") for s in range(3)] + [report(2, 3)]
    reports += [report(3, s) for s in range(3)] + [report(3, 3, outcome="diverged", trigger="loss_explosion")]
    store(session_factory, sweep_id, reports)
    cells = cells_of(session_factory, sweep_id)
    paired = cells[3].vs_baseline
    assert isinstance(paired, PairedComparison)
    # seeds 0-2 diverged only without clipping, seed 3 only with it: p = 2·(1 + 4)/16
    assert (paired.pairs, paired.reference_only, paired.arm_only, paired.p_value) == (4, 3, 1, 0.625)
    assert paired.rate_difference == -0.5
    assert cells[2].vs_baseline is None and cells[0].vs_baseline is None
    assert cells[1].steps_to_target.value == 25.0
    assert cells[1].median_steps_converged_only == 25.0
    assert cells[1].expected_steps_with_restarts == 25.0  # mean steps 25 ÷ success 4/4
    assert cells[0].expected_steps_with_restarts == math.inf
    assert cells[0].steps_to_target == Unavailable("only 0 of 4 runs reached the target: the median run did not")
    # Wilson upper bounds: 0/4 0.490, 1/4 0.699, 3/4 0.954
    frontier = {f.clipping: f.stable_lr for f in stability_frontier(list(cells.values()), 0.75)}
    assert frontier == {"none": 0.1, "norm(max_norm=1.0)": 0.5}
    strict = {f.clipping: f.stable_lr for f in stability_frontier(list(cells.values()), 0.05)}
    assert strict["none"] == Unavailable("with 4 runs per learning rate even no divergence leaves an upper "
                                         "bound above 5%; it takes at least 73 seeds")


def test_summarize_is_a_function_of_the_rows_alone(session_factory: sessionmaker[Session]) -> None:
    """No database behind it: the same rows, in any order, give the same summary."""
    sweep_id = hand_made_sweep(session_factory)
    with session_scope(session_factory) as session:
        rows = summary_rows(session, sweep_id)
    assert summarize(rows[::-1]) == summarize(rows)
    assert summarize([]) == []
