"""Reading runs: a sweep's runs with filters, one run with the config that reproduces it, and
stored series (one run's, or every run's of a cell for the loss curves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Cell, Run, RunPoint, Sweep
from service.db.rows import RunRow, point_row, read_runs, select_points, select_runs
from service.errors import BadFilter, RunNotFound
from service.spec import INT32_MAX
from service.states import RunOutcome


@dataclass(frozen=True)
class RunFilter:
    """Which of a sweep's runs to list. `outcomes` may hold None: a run still pending."""

    outcomes: Sequence[RunOutcome | None] = ()  # empty: any
    lr: float | None = None
    clipping: str | None = None  # an arm's label, e.g. "norm(max_norm=1.0)"
    cell_index: int | None = None


def _check_filter(session: Session, sweep_id: int, wanted: RunFilter) -> None:
    """Refuse a learning rate, arm or cell the sweep does not have, rather than answer nothing."""
    if wanted.lr is None and wanted.clipping is None and wanted.cell_index is None:
        return
    grid = session.execute(select(Cell.cell_index, Cell.lr, Cell.clip_label).where(Cell.sweep_id == sweep_id)).all()
    if wanted.lr is not None and wanted.lr not in {lr for _, lr, _ in grid}:
        raise BadFilter("lr", f"the sweep has no learning rate {wanted.lr!r}; it has "
                              f"{sorted({lr for _, lr, _ in grid})}")
    if wanted.clipping is not None and wanted.clipping not in {arm for _, _, arm in grid}:
        raise BadFilter("clipping", f"the sweep has no clipping arm {wanted.clipping!r}; it has "
                                    f"{sorted({arm for _, _, arm in grid})}")
    if wanted.cell_index is not None and wanted.cell_index not in {c for c, _, _ in grid}:
        raise BadFilter("cell", f"the sweep has no cell {wanted.cell_index}; its cells are 0 to {len(grid) - 1}")


def list_runs(session: Session, sweep_id: int, *, limit: int, offset: int,
              where: RunFilter = RunFilter()) -> tuple[list[RunRow], int]:
    """A page of the sweep's runs in grid order (cell, then seed) and how many match in all."""
    _check_filter(session, sweep_id, where)
    conditions: list[Any] = [Run.sweep_id == sweep_id]
    if where.outcomes:
        matches = Run.outcome.in_([o for o in where.outcomes if o is not None])
        conditions.append(matches | Run.outcome.is_(None) if None in where.outcomes else matches)
    if where.lr is not None:
        conditions.append(Cell.lr == where.lr)
    if where.clipping is not None:
        conditions.append(Cell.clip_label == where.clipping)
    if where.cell_index is not None:
        conditions.append(Run.cell_index == where.cell_index)
    runs = read_runs(session, select_runs(*conditions).limit(limit).offset(offset))
    total = session.scalar(select(func.count()).select_from(select_runs(*conditions).subquery()))
    return runs, total or 0


@dataclass(frozen=True)
class RunDetail:
    """One run, its sweep's name, and the trainer config it ran with (its seed apart):
    `trainers.run_seed(TrainConfig.from_dict(config), seed)` trains it again, with torch alone."""

    run: RunRow
    sweep_name: str
    config: dict[str, Any]


def get_run(session: Session, run_id: int) -> RunDetail:
    rows = read_runs(session, select_runs(Run.id == run_id)) if 0 <= run_id <= INT32_MAX else []
    if not rows:
        raise RunNotFound(run_id)
    [run] = rows
    name, config = session.execute(select(Sweep.name, Cell.config).join(Cell, Cell.sweep_id == Sweep.id).where(
        Cell.sweep_id == run.sweep_id, Cell.cell_index == run.cell_index)).one()
    return RunDetail(run=run, sweep_name=name, config=config)


@dataclass(frozen=True)
class Series:
    """A run's stored points, column by column, NaN put back (db/rows.py). A None norm is a step
    that never computed one (the loss exploded first)."""

    run_id: int
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    clipped: list[bool] = field(default_factory=list)


def series(session: Session, run_ids: Sequence[int]) -> dict[int, Series]:
    """The stored points of each run in `run_ids`, in step order, with one query."""
    out = {run_id: Series(run_id) for run_id in run_ids}
    for run_id, step, loss, grad_norm, clipped in map(point_row, session.execute(
            select_points(RunPoint.run_id.in_(run_ids)))):
        s = out[run_id]
        s.steps.append(step)
        s.loss.append(loss)
        s.grad_norm.append(grad_norm)
        s.clipped.append(clipped)
    return out


def cell_state(session: Session, sweep_id: int, cell_index: int) -> tuple[int, int]:
    """How many runs the cell has and how many of them have an outcome: what its series are
    computed from (a run's points are stored with its outcome)."""
    runs, done = session.execute(select(func.count(), func.count(Run.outcome))
                                 .where(Run.sweep_id == sweep_id, Run.cell_index == cell_index)).one()
    return runs, done


def cell_runs(session: Session, sweep_id: int, cell_index: int) -> tuple[Cell, list[RunRow]]:
    """One cell and every run of it, by seed (for the loss curves of all its seeds)."""
    cell = session.get(Cell, (sweep_id, cell_index))
    if cell is None:
        cells = session.scalar(select(func.count()).select_from(Cell).where(Cell.sweep_id == sweep_id))
        raise BadFilter("cell_index", f"the sweep has no cell {cell_index}; its cells are 0 to {(cells or 0) - 1}",
                        source="path")
    return cell, read_runs(session, select_runs(Run.sweep_id == sweep_id, Run.cell_index == cell_index))
