"""The row reader: runs and points as users see them, storage details undone in one place.

NaN is stored as NULL (db/types.NanAsNull), and a run's trigger says which NULLs were NaN; JSON
gives a histogram's bins back as strings. Every reader of runs and points (the summary, the runs
list, a run's detail, the series) goes through `read_runs`/`run_row` and `point_row`, and the
export, which reads columns (db/columns.py), through their column twins `run_nans` and
`point_nans`, so none of them, nor the API schemas or the dashboard, ever sees either detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from service.db.models import Cell, Run, RunPoint
from service.states import RunOutcome
from trainers.detection import Trigger

# The run fields whose NULL is a NaN when the run ended with this trigger. A point's loss is always
# computed (NULL = NaN); its norm is NaN only at a nonfinite_grad run's divergence step.
NAN_TRIGGERS = {"final_loss": Trigger.NONFINITE_LOSS, "max_grad_norm": Trigger.NONFINITE_GRAD,
                "divergence_grad_norm": Trigger.NONFINITE_GRAD}

_ON_CELL = and_(Cell.sweep_id == Run.sweep_id, Cell.cell_index == Run.cell_index)


@dataclass(frozen=True)
class OutcomeRow:
    """What a run ended with: all that a sweep's summary reads of it. (Each column read costs a
    summary of thousands of runs time, so the summary reads these and no more.)"""

    cell_index: int
    seed: int
    lr: float
    clipping: str  # the arm's label, e.g. norm(max_norm=1.0)
    clip_method: str
    outcome: RunOutcome | None  # None: still pending
    trigger: str | None
    converged_at_step: int | None
    steps_done: int | None
    clipped_steps: int | None
    max_grad_norm: float | None
    norm_histogram: dict[int, int] | None  # None: stored before norms were binned
    divergence_grad_norm: float | None


@dataclass(frozen=True)
class RunRow(OutcomeRow):
    """A whole run, as it was trained and reported, with its cell's learning rate and arm."""

    id: int
    sweep_id: int
    diverged_at_step: int | None
    initial_loss: float | None
    final_loss: float | None
    min_loss: float | None
    final_eval_loss: float | None
    device: str | None
    node: str | None
    error: str | None
    attempts: int


# Where each field is read from; the cell's columns stand in for what runs once copied.
_COLUMN = {"lr": Cell.lr, "clipping": Cell.clip_label, "clip_method": Cell.clip_method}
Row = TypeVar("Row", bound=OutcomeRow)


class _Reader:
    """How rows of one type are selected and converted: the columns in field order, and where
    in them the trigger, the NaN fields and the histogram sit."""

    def __init__(self, row_type: type[OutcomeRow]) -> None:
        names = [f.name for f in fields(row_type)]
        self.row_type = row_type
        self.columns = [_COLUMN[name] if name in _COLUMN else getattr(Run, name) for name in names]
        self.trigger, self.histogram = names.index("trigger"), names.index("norm_histogram")
        self.nan_at = [(names.index(name), trigger) for name, trigger in NAN_TRIGGERS.items() if name in names]

    def convert(self, row: Any) -> Any:
        values = list(row)
        trigger = values[self.trigger]
        for index, nan_trigger in self.nan_at:
            if values[index] is None and trigger == nan_trigger:
                values[index] = math.nan
        if values[self.histogram] is not None:
            values[self.histogram] = {int(index): count for index, count in values[self.histogram].items()}
        return self.row_type(*values)


_READERS = {row_type: _Reader(row_type) for row_type in (OutcomeRow, RunRow)}


def select_runs(*where: Any, row_type: type[OutcomeRow] = RunRow) -> Select[Any]:
    """Runs joined with their cells, filtered by `where`, in grid order (cell, then seed), with
    the columns of `row_type`; add a limit or more conditions, and read the rows with `run_row`."""
    return (select(*_READERS[row_type].columns).join(Cell, _ON_CELL).where(*where)
            .order_by(Run.cell_index, Run.seed))


def run_row(row: Any, row_type: type[Row] = RunRow) -> Row:  # type: ignore[assignment]
    """A database row of `select_runs(..., row_type=row_type)` as that type."""
    return _READERS[row_type].convert(row)


def read_runs(session: Session, query: Select[Any], row_type: type[Row] = RunRow) -> list[Row]:  # type: ignore[assignment]
    convert = _READERS[row_type].convert
    return [convert(row) for row in session.execute(query)]


# One stored point of a run: (run_id, step, loss, grad_norm, clipped). A grad_norm of None: the
# loss diverged before backward computed a norm. A plain tuple: an export reads a million of them.
PointRow = tuple[int, int, float, "float | None", bool]


def select_points(*where: Any) -> Select[Any]:
    """Points with what their run says of their NaNs, by run then step (the primary key's order);
    read them with `point_row`."""
    return (select(RunPoint.run_id, RunPoint.step, RunPoint.loss, RunPoint.grad_norm, RunPoint.clipped,
                   Run.trigger, Run.diverged_at_step)
            .join(Run, RunPoint.run_id == Run.id).where(*where).order_by(RunPoint.run_id, RunPoint.step))


def nan_norm_step(trigger: str | None, diverged_at_step: int | None) -> int | None:
    """The step at which a run's stored norm of None is a NaN: its divergence step if it ended
    on a non-finite gradient; None if it has no such step."""
    return diverged_at_step if trigger == Trigger.NONFINITE_GRAD else None


def point_row(row: Any) -> PointRow:
    run_id, step, loss, grad_norm, clipped, trigger, diverged_at_step = row
    if grad_norm is None and step == nan_norm_step(trigger, diverged_at_step):
        grad_norm = math.nan
    return run_id, step, math.nan if loss is None else loss, grad_norm, clipped


def run_nans(runs: pa.Table) -> pa.Table:
    """`run_row`'s NaN rule for a table of runs (db/columns.stream_runs), column by column."""
    for name, trigger in NAN_TRIGGERS.items():
        if name in runs.column_names:
            column = runs[name]
            at_nan = pc.fill_null(pc.and_(column.is_null(), pc.equal(runs["trigger"], trigger.value)), False)
            runs = runs.set_column(runs.column_names.index(name), name, pc.if_else(at_nan, math.nan, column))
    return runs


def nan_norm_steps(triggers: pa.ChunkedArray, diverged_at_steps: pa.ChunkedArray) -> pa.ChunkedArray:
    """`nan_norm_step` of many runs, column by column."""
    return pc.if_else(pc.equal(triggers, Trigger.NONFINITE_GRAD.value), diverged_at_steps, None)


def point_nans(points: pa.Table, nan_steps: pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """`point_row` for a table of stored points (db/columns.stream_points), column by column: its
    loss and grad_norm with their NaNs back. `nan_steps` holds, for each point, its run's
    `nan_norm_step` (null where it has none)."""
    loss, grad_norm = points["loss"].combine_chunks(), points["grad_norm"].combine_chunks()
    at_nan = pc.fill_null(pc.and_(grad_norm.is_null(), pc.equal(points["step"], nan_steps)), False)
    return pc.fill_null(loss, math.nan), pc.if_else(at_nan, math.nan, grad_norm)
