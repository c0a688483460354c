"""Use cases on sweeps: create, read, list, progress, summary. Each takes a session; the caller
commits once per use case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from service.db.models import NAN_TRIGGERS, Run, RunOutcome, Sweep, SweepStatus, restore_nan
from service.results import now
from service.spec import SpecError, SweepSpec, cells, resolve_spec
from trainers.clipping import arm_label
from service.statistics import (
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


class SweepNotFound(LookupError):
    def __init__(self, sweep_id: int) -> None:
        super().__init__(f"no sweep with id {sweep_id}")
        self.sweep_id = sweep_id


def create_sweep(session: Session, spec: SweepSpec, *, max_runs: int) -> Sweep:
    """Store a sweep and all its pending runs (one per cell × seed), queued for a worker."""
    spec = resolve_spec(spec)
    seeds = spec.seed_list
    grid = cells(spec)
    total = len(grid) * len(seeds)
    if total > max_runs:
        raise SpecError([{
            "loc": [], "type": "value_error",
            "msg": (f"the grid has {total} runs ({len(spec.learning_rates)} learning rates × "
                    f"{len(spec.clipping)} arms × {len(seeds)} seeds), more than the limit of "
                    f"{max_runs}; submit fewer, or raise CLIPSWEEP_MAX_RUNS_PER_SWEEP"),
        }])
    sweep = Sweep(
        name=spec.name or spec.task.name,
        task=spec.task.name,
        spec=spec.model_dump(mode="json"),
        status=SweepStatus.QUEUED.value,
        runs_total=total,
        created_at=now(),
    )
    session.add(sweep)
    session.flush()
    session.execute(insert(Run), [
        {"sweep_id": sweep.id, "cell_index": cell.index, "lr": cell.lr,
         "clip_method": cell.clipping.method, "clip_params": dict(cell.clipping.params),
         "clip_label": arm_label(cell.clipping), "seed": seed}
        for cell in grid for seed in seeds
    ])
    return sweep


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise SweepNotFound(sweep_id)
    return sweep


def list_sweeps(session: Session, *, limit: int, offset: int,
                status: SweepStatus | None = None) -> tuple[list[Sweep], int]:
    """A page of sweeps, newest first, and the total count."""
    query = select(Sweep)
    count = select(func.count()).select_from(Sweep)
    if status is not None:
        query = query.where(Sweep.status == status.value)
        count = count.where(Sweep.status == status.value)
    sweeps = session.scalars(query.order_by(Sweep.id.desc()).limit(limit).offset(offset)).all()
    return list(sweeps), session.scalar(count) or 0


def outcome_counts(session: Session, sweep_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per sweep, how many runs ended with each outcome (outcomes with none are 0)."""
    counts = {sid: {o.value: 0 for o in RunOutcome} for sid in sweep_ids}
    rows = session.execute(
        select(Run.sweep_id, Run.outcome, func.count())
        .where(Run.sweep_id.in_(sweep_ids), Run.outcome.is_not(None))
        .group_by(Run.sweep_id, Run.outcome)
    )
    for sweep_id, outcome, n in rows:
        counts[sweep_id][outcome] = n
    return counts


@dataclass(frozen=True)
class CellSummary:
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
    # Against the `none` arm at the same learning rate, seed by seed; None for `none` itself or
    # when the sweep has no `none` arm.
    vs_none: PairedComparison | Unavailable | None
    # (step, fraction of finished runs converged by then) at each step where one converged.
    converged_by_step: list[tuple[int, float]]
    telemetry: Telemetry | Unavailable


@dataclass(frozen=True)
class ArmFrontier:
    clipping: str
    clip_method: str
    stable_lr: float | Unavailable  # highest lr whose divergence upper bound is under the tolerance


# Outcomes of runs that trained to the end; failed and cancelled runs say nothing about divergence.
TRAINED = frozenset({RunOutcome.CONVERGED.value, RunOutcome.DIVERGED.value, RunOutcome.UNCONVERGED.value})


def summarize_cells(session: Session, sweep_id: int) -> list[CellSummary]:
    """One entry per cell. Rates are over finished runs that trained to an outcome (converged,
    diverged, unconverged); failed and cancelled runs say nothing about divergence."""
    rows = session.execute(
        select(Run.cell_index, Run.lr, Run.clip_label, Run.clip_method, Run.outcome, Run.trigger,
               Run.converged_at_step, Run.steps_done, Run.seed, Run.clipped_steps, Run.max_grad_norm,
               Run.norm_histogram, Run.divergence_grad_norm)
        .where(Run.sweep_id == sweep_id)
        .order_by(Run.cell_index, Run.seed)
    ).all()
    by_cell: dict[int, list[Any]] = {}
    for row in rows:
        by_cell.setdefault(row.cell_index, []).append(row)
    # Each learning rate's `none` arm, seed -> diverged, for the paired comparisons.
    reference = {
        cell_rows[0].lr: {r.seed: r.outcome == RunOutcome.DIVERGED.value for r in cell_rows if r.outcome in TRAINED}
        for cell_rows in by_cell.values() if cell_rows[0].clip_method == "none"
    }
    unfinished = Unavailable("the cell has runs still training")
    out = []
    for index, cell_rows in by_cell.items():
        done = [r for r in cell_rows if r.outcome in TRAINED]
        diverged = sum(r.outcome == RunOutcome.DIVERGED.value for r in done)
        converged = sum(r.outcome == RunOutcome.CONVERGED.value for r in done)
        # Every run has an outcome (failed and cancelled ones too): the statistics over the trained
        # runs are final. Before that, unfinished runs would count as never converging.
        all_done = all(r.outcome is not None for r in cell_rows)
        steps = [r.converged_at_step for r in done]
        lr, method = cell_rows[0].lr, cell_rows[0].clip_method
        vs_none = None
        if method != "none" and lr in reference:
            vs_none = paired_comparison(reference[lr], {r.seed: r.outcome == RunOutcome.DIVERGED.value for r in done})
        at = sorted({s for s in steps if s is not None})
        out.append(CellSummary(
            cell_index=index,
            lr=lr,
            clipping=cell_rows[0].clip_label,
            clip_method=method,
            runs=len(cell_rows),
            finished=len(done),
            diverged=diverged,
            converged=converged,
            divergence_rate=diverged / len(done) if done else None,
            divergence_ci=wilson_interval(diverged, len(done)) if done else None,
            median_steps_to_target=median_steps_to_target(steps) if all_done else None,
            steps_to_target=steps_to_target(steps, seed=index) if all_done else unfinished,
            median_steps_converged_only=median_steps_converged_only(steps) if all_done else unfinished,
            expected_steps_with_restarts=(expected_steps_to_success([r.steps_done or 0 for r in done], converged)
                                          if all_done else unfinished),
            vs_none=vs_none,
            converged_by_step=list(zip(at, converged_fraction(steps, at))),
            telemetry=_telemetry(done),
        ))
    return out


def _telemetry(done: list[Any]) -> Telemetry | Unavailable:
    """Clipping telemetry of a cell's finished runs."""
    recorded = [r for r in done if r.norm_histogram is not None]
    if not recorded:
        return Unavailable("no finished run has norm telemetry (runs stored before it was recorded have none)")

    def stored(name: str, runs: list[Any]) -> list[float]:  # with NaN put back, without never-computed values
        values = (restore_nan(getattr(r, name), r.trigger, NAN_TRIGGERS[name]) for r in runs)
        return [v for v in values if v is not None]

    histogram = merge_histograms(r.norm_histogram for r in recorded)
    return clipping_telemetry(
        histogram,
        # Steps that computed a gradient: the binned finite norms and each run's non-finite one.
        steps=sum(histogram.values()) + sum(r.trigger == "nonfinite_grad" for r in recorded),
        clipped_steps=sum(r.clipped_steps or 0 for r in recorded),
        max_norms=stored("max_grad_norm", recorded),
        divergence_norms=stored("divergence_grad_norm",
                                [r for r in recorded if r.outcome == RunOutcome.DIVERGED.value]))


def stability_frontier(cells: list[CellSummary], tolerance: float) -> list[ArmFrontier]:
    """Per arm, the highest learning rate whose divergence-rate upper bound is under `tolerance`."""
    arms: dict[str, list[CellSummary]] = {}
    for cell in cells:
        arms.setdefault(cell.clipping, []).append(cell)
    return [ArmFrontier(clipping=label, clip_method=arm[0].clip_method,
                        stable_lr=stable_learning_rate({c.lr: (c.diverged, c.finished) for c in arm}, tolerance))
            for label, arm in arms.items()]
