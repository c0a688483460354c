"""Use cases on runs: list a sweep's runs with filters, read one run with the config that
reproduces it, and read stored series (one run's, or every run's of a cell for the loss curves)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Run, RunPoint, restore_point_nan
from service.spec import SweepSpec, cells

PENDING = "pending"  # the outcome filter's name for runs without an outcome yet


class RunNotFound(LookupError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"no run with id {run_id}")


class BadFilter(ValueError):
    """A filter (a query or path parameter) that names something the sweep does not have; the
    message lists what it has."""

    def __init__(self, name: str, message: str, source: str = "query") -> None:
        super().__init__(message)
        self.loc = [source, name]


@dataclass(frozen=True)
class RunFilter:
    outcomes: Sequence[str] = ()  # RunOutcome values or PENDING; empty: any
    lr: float | None = None
    clipping: str | None = None  # an arm's label, e.g. "norm(max_norm=1.0)"
    cell_index: int | None = None


def _check_filter(session: Session, sweep_id: int, wanted: RunFilter) -> None:
    """Refuse a learning rate, arm or cell the sweep does not have, rather than answer nothing."""
    if wanted.lr is None and wanted.clipping is None and wanted.cell_index is None:
        return
    grid = session.execute(select(Run.cell_index, Run.lr, Run.clip_label).where(Run.sweep_id == sweep_id)
                           .distinct()).all()
    if wanted.lr is not None and wanted.lr not in {lr for _, lr, _ in grid}:
        raise BadFilter("lr", f"the sweep has no learning rate {wanted.lr!r}; it has "
                              f"{sorted({lr for _, lr, _ in grid})}")
    if wanted.clipping is not None and wanted.clipping not in {arm for _, _, arm in grid}:
        raise BadFilter("clipping", f"the sweep has no clipping arm {wanted.clipping!r}; it has "
                                    f"{sorted({arm for _, _, arm in grid})}")
    if wanted.cell_index is not None and wanted.cell_index not in {c for c, _, _ in grid}:
        raise BadFilter("cell", f"the sweep has no cell {wanted.cell_index}; its cells are 0 to {len(grid) - 1}")


def list_runs(session: Session, sweep_id: int, *, limit: int, offset: int,
              where: RunFilter = RunFilter()) -> tuple[list[Run], int]:
    """A page of the sweep's runs in grid order (cell, then seed) and how many match in all."""
    _check_filter(session, sweep_id, where)
    conditions: list[Any] = [Run.sweep_id == sweep_id]
    if where.outcomes:
        outcomes = [o for o in where.outcomes if o != PENDING]
        matches = Run.outcome.in_(outcomes)
        conditions.append(matches | Run.outcome.is_(None) if PENDING in where.outcomes else matches)
    if where.lr is not None:
        conditions.append(Run.lr == where.lr)
    if where.clipping is not None:
        conditions.append(Run.clip_label == where.clipping)
    if where.cell_index is not None:
        conditions.append(Run.cell_index == where.cell_index)
    runs = session.scalars(select(Run).where(*conditions).order_by(Run.cell_index, Run.seed)
                           .limit(limit).offset(offset)).all()
    total = session.scalar(select(func.count()).select_from(Run).where(*conditions))
    return list(runs), total or 0


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


def reproduce_config(run: Run) -> dict[str, Any]:
    """The trainer config the run trained with (its seed apart): `trainers.run_seed(
    TrainConfig.from_dict(config), seed)` trains it again, with torch alone."""
    spec = SweepSpec.model_validate(run.sweep.spec)
    for cell in cells(spec):
        if cell.index == run.cell_index:
            return cell.config.to_dict()
    raise LookupError(f"the stored spec of sweep {run.sweep_id} has no cell {run.cell_index}")


@dataclass(frozen=True)
class Series:
    """A run's stored points, column by column. A NULL loss was a NaN; a NULL norm was a NaN at a
    nonfinite_grad divergence step, and otherwise a step that never computed one (the loss
    exploded first)."""

    run_id: int
    steps: list[int]
    loss: list[float]
    grad_norm: list[float | None]
    clipped: list[bool]


def series(session: Session, run_ids: Sequence[int]) -> dict[int, Series]:
    """The stored points of each run in `run_ids`, in step order, with one query."""
    out = {run_id: Series(run_id, [], [], [], []) for run_id in run_ids}
    rows = session.execute(
        select(RunPoint.run_id, RunPoint.step, RunPoint.loss, RunPoint.grad_norm, RunPoint.clipped, Run.trigger,
               Run.diverged_at_step)
        .join(Run, Run.id == RunPoint.run_id)
        .where(RunPoint.run_id.in_(run_ids)).order_by(RunPoint.run_id, RunPoint.step))
    for run_id, step, loss, grad_norm, clipped, trigger, diverged_at in rows:
        s = out[run_id]
        loss, grad_norm = restore_point_nan(loss, grad_norm, trigger, step == diverged_at)
        s.steps.append(step)
        s.loss.append(loss)
        s.grad_norm.append(grad_norm)
        s.clipped.append(clipped)
    return out


def cell_runs(session: Session, sweep_id: int, cell_index: int) -> list[Run]:
    """Every run of one cell, by seed (for the loss curves of all its seeds)."""
    runs = list(session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.cell_index == cell_index)
                                .order_by(Run.seed)).all())
    if not runs:
        cells = session.scalar(select(func.count(func.distinct(Run.cell_index))).where(Run.sweep_id == sweep_id))
        raise BadFilter("cell_index", f"the sweep has no cell {cell_index}; its cells are 0 to {(cells or 0) - 1}",
                        source="path")
    return runs
