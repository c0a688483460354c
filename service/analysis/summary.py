"""A sweep's summary: one CellSummary per cell, and each arm's stability frontier.

`summarize(rows)` is a pure function of the sweep's loaded runs (db/rows.OutcomeRow, NaN already
put back). Rates count only runs that trained to an outcome (converged, diverged, unconverged): failed
and cancelled runs say nothing about divergence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping, Sequence

from service.analysis.numbers import percent
from service.analysis.sequential import Verdict, out_of_reach, stability
from service.analysis.statistics import (
    Estimate,
    PairedComparison,
    Telemetry,
    Unavailable,
    clipping_telemetry,
    converged_fraction,
    expected_steps_to_success,
    median_steps_converged_only,
    median_steps_to_target,
    merge_histograms,
    paired_comparison,
    stable_learning_rate,
    steps_to_target,
    wilson_interval,
)
from service.db.rows import OutcomeRow
from service.states import RunOutcome
from trainers.clipping import BASELINE
from trainers.detection import Trigger


@dataclass(frozen=True)
class CellSummary:
    """What one cell's runs say: how often they diverged (with a Wilson 95% interval), how they
    compare seed by seed with the baseline arm at the same learning rate, how fast they reached
    the target, and how hard the clipper worked."""

    cell_index: int
    lr: float
    clipping: str
    clip_method: str
    runs: int
    finished: int
    diverged: int
    converged: int
    divergence_rate: float | None
    divergence_ci: tuple[float, float] | None
    median_steps_to_target: float | None
    # Only over a finished cell (unfinished runs would otherwise count as never converging):
    steps_to_target: Estimate | Unavailable
    median_steps_converged_only: float | Unavailable
    expected_steps_with_restarts: float | Unavailable
    # Against the baseline arm (no clipping) at the same learning rate, seed by seed; None for
    # the baseline itself or when the sweep has no baseline arm.
    vs_baseline: PairedComparison | Unavailable | None
    # (step, fraction of finished runs converged by then) at each step where one converged.
    converged_by_step: list[tuple[int, float]]
    telemetry: Telemetry | Unavailable


@dataclass(frozen=True)
class ArmFrontier:
    """An arm's highest learning rate whose divergence upper bound is under the tolerance."""

    clipping: str
    clip_method: str
    stable_lr: float | Unavailable


def _diverged_by_seed(runs: Sequence[OutcomeRow]) -> dict[int, bool]:
    return {r.seed: r.outcome is RunOutcome.DIVERGED for r in runs}


def summarize(rows: Sequence[OutcomeRow], only: Collection[int] | None = None,
              estimates: Mapping[int, tuple[int, Estimate | Unavailable]] | None = None) -> list[CellSummary]:
    """One entry per cell, in cell order, from every run of a sweep; with `only`, for those cells
    alone (the rows of the others serve as their baselines). `estimates`: steps to target already
    computed from a finished cell's runs, with their number (service/lifecycle/estimates.py),
    used instead of bootstrapping again while the cell has that many runs."""
    by_cell: dict[int, list[OutcomeRow]] = {}
    for row in sorted(rows, key=lambda r: (r.cell_index, r.seed)):
        by_cell.setdefault(row.cell_index, []).append(row)
    trained = {index: [r for r in runs if r.outcome is not None and r.outcome.is_trained()]
               for index, runs in by_cell.items()}
    # Each learning rate's baseline arm, seed -> diverged, for the paired comparisons.
    baseline = {runs[0].lr: _diverged_by_seed(trained[index])
                for index, runs in by_cell.items() if runs[0].clip_method == BASELINE}
    unfinished = Unavailable("the cell has runs still training")
    out = []
    for index, runs in by_cell.items():
        if only is not None and index not in only:
            continue
        done = trained[index]
        diverged = sum(r.outcome is RunOutcome.DIVERGED for r in done)
        converged = sum(r.outcome is RunOutcome.CONVERGED for r in done)
        # Every run has an outcome (failed and cancelled ones too): the statistics over the trained
        # runs are final. Before that, unfinished runs would count as never converging.
        all_done = all(r.outcome is not None for r in runs)
        steps = [r.converged_at_step for r in done]
        first = runs[0]
        vs_baseline = None
        if first.clip_method != BASELINE and first.lr in baseline:
            vs_baseline = paired_comparison(baseline[first.lr], _diverged_by_seed(done))
        at = sorted({s for s in steps if s is not None})
        out.append(CellSummary(
            cell_index=index,
            lr=first.lr,
            clipping=first.clipping,
            clip_method=first.clip_method,
            runs=len(runs),
            finished=len(done),
            diverged=diverged,
            converged=converged,
            divergence_rate=diverged / len(done) if done else None,
            divergence_ci=wilson_interval(diverged, len(done)) if done else None,
            median_steps_to_target=median_steps_to_target(steps) if all_done else None,
            steps_to_target=_steps_to_target(steps, index, len(runs), estimates or {}) if all_done else unfinished,
            median_steps_converged_only=median_steps_converged_only(steps) if all_done else unfinished,
            expected_steps_with_restarts=(expected_steps_to_success([r.steps_done or 0 for r in done], converged)
                                          if all_done else unfinished),
            vs_baseline=vs_baseline,
            converged_by_step=list(zip(at, converged_fraction(steps, at))),
            telemetry=_telemetry(done),
        ))
    return out


def _steps_to_target(steps: list[int | None], index: int, runs: int,
                     estimates: Mapping[int, tuple[int, Estimate | Unavailable]]) -> Estimate | Unavailable:
    for_runs, estimate = estimates.get(index, (None, None))
    return estimate if for_runs == runs and estimate is not None else steps_to_target(steps, seed=index)


def _telemetry(done: Sequence[OutcomeRow]) -> Telemetry | Unavailable:
    """Clipping telemetry of a cell's finished runs."""
    recorded = [r for r in done if r.norm_histogram is not None]
    if not recorded:
        return Unavailable("no finished run has norm telemetry (runs stored before it was recorded have none)")
    histogram = merge_histograms(r.norm_histogram for r in recorded if r.norm_histogram is not None)
    return clipping_telemetry(
        histogram,
        # Steps that computed a gradient: the binned finite norms and each run's non-finite one.
        steps=sum(histogram.values()) + sum(r.trigger == Trigger.NONFINITE_GRAD for r in recorded),
        clipped_steps=sum(r.clipped_steps or 0 for r in recorded),
        # Without the values never computed (None); a NaN is a norm that was computed.
        max_norms=[r.max_grad_norm for r in recorded if r.max_grad_norm is not None],
        divergence_norms=[r.divergence_grad_norm for r in recorded
                          if r.outcome is RunOutcome.DIVERGED and r.divergence_grad_norm is not None])


def stability_frontier(cells: Sequence[CellSummary], tolerance: float,
                       anytime_alpha: float | None = None) -> list[ArmFrontier]:
    """Per arm, the highest learning rate whose divergence-rate upper bound is under `tolerance`.
    With `anytime_alpha` (a sweep that chose its seeds adaptively, looking after every round) a
    learning rate counts as stable only where the anytime-valid test says so: a Wilson bound is not
    valid after such looks."""
    arms: dict[str, list[CellSummary]] = {}
    for cell in cells:
        arms.setdefault(cell.clipping, []).append(cell)
    if anytime_alpha is None:
        return [ArmFrontier(clipping=label, clip_method=arm[0].clip_method,
                            stable_lr=stable_learning_rate({c.lr: (c.diverged, c.finished) for c in arm}, tolerance))
                for label, arm in arms.items()]
    return [ArmFrontier(clipping=label, clip_method=arm[0].clip_method,
                        stable_lr=_anytime_stable_lr(arm, tolerance, anytime_alpha)) for label, arm in arms.items()]


def anytime_verdict(cell: CellSummary, tolerance: float, alpha: float) -> Verdict:
    """The cell's verdict at `tolerance` by the anytime-valid test (service/analysis/sequential.py)."""
    return stability(cell.diverged, cell.finished, tolerance, alpha)


def cell_out_of_reach(cell: CellSummary, tolerance: float, alpha: float, most: int) -> bool:
    """Whether the cell stopped undecided short of `most` seeds because `most` would not have
    decided it (sequential.out_of_reach), by the rule its sweep's rounds were planned with."""
    return (stability(cell.diverged, cell.finished, tolerance, alpha) is Verdict.UNDECIDED
            and out_of_reach(cell.diverged, cell.finished, tolerance, alpha, most))


def _anytime_stable_lr(arm: Sequence[CellSummary], tolerance: float, alpha: float) -> float | Unavailable:
    stable = [c.lr for c in arm if anytime_verdict(c, tolerance, alpha) is Verdict.STABLE]
    if stable:
        return max(stable)
    return Unavailable(f"no learning rate is shown stable at {percent(tolerance)} by the anytime-valid test "
                       "(adaptive seeds) yet")
