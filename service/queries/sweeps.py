"""Reading sweeps: one, a page of them, their progress, their cells, the runs a summary needs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Cell, Run, Sweep
from service.db.rows import OutcomeRow, read_runs, select_runs
from service.errors import SweepNotFound
from service.spec import INT32_MAX
from service.states import RunOutcome, SweepStatus


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    # An id the database cannot even hold is no sweep's (and would overflow its driver).
    sweep = session.get(Sweep, sweep_id) if 0 <= sweep_id <= INT32_MAX else None
    if sweep is None:
        raise SweepNotFound(sweep_id)
    return sweep


def list_sweeps(session: Session, *, limit: int, offset: int,
                status: SweepStatus | None = None) -> tuple[list[Sweep], int]:
    """A page of sweeps, newest first, and the total count."""
    query = select(Sweep)
    count = select(func.count()).select_from(Sweep)
    if status is not None:
        query = query.where(Sweep.status == status)
        count = count.where(Sweep.status == status)
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
        counts[sweep_id][outcome.value] = n
    return counts


def sweep_cells(session: Session, sweep_id: int) -> list[Cell]:
    """The sweep's stored grid, in cell order."""
    return list(session.scalars(select(Cell).where(Cell.sweep_id == sweep_id).order_by(Cell.cell_index)))


def summary_rows(session: Session, sweep_id: int) -> list[OutcomeRow]:
    """What every run of the sweep ended with, one row each (never its points: the summary stays
    fast at a million of them)."""
    return read_runs(session, select_runs(Run.sweep_id == sweep_id, row_type=OutcomeRow), OutcomeRow)
