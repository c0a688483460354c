"""Use cases on runs: list a sweep's runs with filters, read one run with the config that
reproduces it, and read stored series (one run's, or every run's of a cell for the loss curves)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import Run, RunPoint
from service.spec import SweepSpec, cells

PENDING = "pending"  # the outcome filter's name for runs without an outcome yet


class RunNotFound(LookupError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"no run with id {run_id}")


class BadFilter(ValueError):
    """A filter that names something the sweep does not have; the message lists what it has."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class RunFilter:
    outcomes: Sequence[str] = ()  # RunOutcome values or PENDING; empty: any
    lr: float | None = None
    clipping: str | None = None  # an arm's label, e.g. "norm(max_norm=1.0)"
    cell_index: int | None = None


def _check_filter(session: Session, sweep_id: int, wanted: RunFilter) -> None:
    """Refuse a learning rate, arm or cell the sweep does not have, rather than answer nothing."""
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
    triggers = dict(session.execute(select(Run.id, Run.trigger).where(Run.id.in_(run_ids))).tuples().all())
    out = {run_id: Series(run_id, [], [], [], []) for run_id in run_ids}
    rows = session.execute(select(RunPoint.run_id, RunPoint.step, RunPoint.loss, RunPoint.grad_norm, RunPoint.clipped)
                           .where(RunPoint.run_id.in_(run_ids)).order_by(RunPoint.run_id, RunPoint.step))
    for run_id, step, loss, grad_norm, clipped in rows:
        s = out[run_id]
        s.steps.append(step)
        s.loss.append(math.nan if loss is None else loss)  # a loss is always computed: NULL was NaN
        s.grad_norm.append(grad_norm)
        s.clipped.append(clipped)
    for run_id, s in out.items():
        if triggers.get(run_id) == "nonfinite_grad" and s.grad_norm and s.grad_norm[-1] is None:
            s.grad_norm[-1] = math.nan
    return out


def cell_runs(session: Session, sweep_id: int, cell_index: int) -> list[Run]:
    """Every run of one cell, by seed (for the loss curves of all its seeds)."""
    _check_filter(session, sweep_id, RunFilter(cell_index=cell_index))
    return list(session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.cell_index == cell_index)
                                .order_by(Run.seed)).all())
