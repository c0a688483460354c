"""Reading what a comparison needs: a sweep's cells with their trained runs, seed by seed."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.analysis.comparison import CellRuns, Comparison, Thresholds, compare
from service.db.models import Cell, Run, SweepComparison
from service.states import RunOutcome


def cells_with_outcomes(session: Session, sweep_id: int) -> list[CellRuns]:
    """Each cell of the sweep with its trained runs (failed and cancelled runs say nothing about
    divergence) and whether every run of it has an outcome."""
    cells = session.execute(select(Cell.cell_index, Cell.config_hash, Cell.lr, Cell.clip_label, Cell.clip_method)
                            .where(Cell.sweep_id == sweep_id).order_by(Cell.cell_index)).all()
    diverged: dict[int, dict[int, bool]] = {index: {} for index, *_ in cells}
    converged: dict[int, dict[int, int | None]] = {index: {} for index, *_ in cells}
    unfinished: set[int] = set()
    runs = session.execute(select(Run.cell_index, Run.seed, Run.outcome, Run.converged_at_step)
                           .where(Run.sweep_id == sweep_id))
    for index, seed, outcome, step in runs:
        if outcome is None:
            unfinished.add(index)
        elif outcome.is_trained():
            diverged[index][seed] = outcome is RunOutcome.DIVERGED
            converged[index][seed] = step
    return [CellRuns(config_hash=config_hash, cell_index=index, lr=lr, clipping=label, clip_method=method,
                     diverged=diverged[index], converged_at=converged[index], finished=index not in unfinished)
            for index, config_hash, lr, label, method in cells]


def compare_sweeps(session: Session, sweep_id: int, baseline_id: int, thresholds: Thresholds) -> Comparison:
    return compare(cells_with_outcomes(session, sweep_id), cells_with_outcomes(session, baseline_id), thresholds)


def stored_comparisons(session: Session, sweep_ids: list[int]) -> dict[int, SweepComparison]:
    """The stored comparison of each of these sweeps that has one (scheduled sweeps, once finished)."""
    rows = session.scalars(select(SweepComparison).where(SweepComparison.sweep_id.in_(sweep_ids))) if sweep_ids else []
    return {row.sweep_id: row for row in rows}
