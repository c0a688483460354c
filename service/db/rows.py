"""The row reader: runs and points as users see them, storage details undone in one place.

NaN is stored as NULL (db/types.NanAsNull), and a run's trigger says which NULLs were NaN; JSON
gives a histogram's bins back as strings. Every reader of runs and points (the summary, the runs
list, a run's detail, the series, the exports) goes through `run_row` and `point_row`, so none
of them, nor the API schemas or the dashboard, ever sees either detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Cell, Run, RunPoint
from service.states import RunOutcome
from trainers.detection import Trigger

# The run fields whose NULL is a NaN when the run ended with this trigger. A point's loss is always
# computed (NULL = NaN); its norm is NaN only at a nonfinite_grad run's divergence step.
NAN_TRIGGERS = {"final_loss": Trigger.NONFINITE_LOSS, "max_grad_norm": Trigger.NONFINITE_GRAD,
                "divergence_grad_norm": Trigger.NONFINITE_GRAD}

_ON_CELL = and_(Cell.sweep_id == Run.sweep_id, Cell.cell_index == Run.cell_index)


@dataclass(frozen=True)
class RunRow:
    """One run with its cell's learning rate and arm, as it was trained and reported."""

    id: int
    sweep_id: int
    cell_index: int
    seed: int
    lr: float
    clipping: str  # the arm's label, e.g. norm(max_norm=1.0)
    clip_method: str
    outcome: RunOutcome | None  # None: still pending
    trigger: str | None
    diverged_at_step: int | None
    converged_at_step: int | None
    steps_done: int | None
    initial_loss: float | None
    final_loss: float | None
    min_loss: float | None
    final_eval_loss: float | None
    clipped_steps: int | None
    max_grad_norm: float | None
    norm_histogram: dict[int, int] | None  # None: stored before norms were binned
    divergence_grad_norm: float | None
    device: str | None
    node: str | None
    error: str | None
    attempts: int
    finished_at: datetime | None


# The selected columns, in RunRow's field order.
_RUN_COLUMNS = (Run.id, Run.sweep_id, Run.cell_index, Run.seed, Cell.lr, Cell.clip_label, Cell.clip_method,
                Run.outcome, Run.trigger, Run.diverged_at_step, Run.converged_at_step, Run.steps_done,
                Run.initial_loss, Run.final_loss, Run.min_loss, Run.final_eval_loss, Run.clipped_steps,
                Run.max_grad_norm, Run.norm_histogram, Run.divergence_grad_norm, Run.device, Run.node, Run.error,
                Run.attempts, Run.finished_at)


def select_runs(*where: Any) -> Select[Any]:
    """Runs joined with their cells, filtered by `where`, in grid order (cell, then seed); add a
    limit or more conditions, and read the rows with `run_row`."""
    return select(*_RUN_COLUMNS).join(Cell, _ON_CELL).where(*where).order_by(Run.cell_index, Run.seed)


def run_row(row: Any) -> RunRow:
    values = dict(zip(RunRow.__dataclass_fields__, row))
    for name, nan_trigger in NAN_TRIGGERS.items():
        if values[name] is None and values["trigger"] == nan_trigger:
            values[name] = math.nan
    if values["norm_histogram"] is not None:
        values["norm_histogram"] = {int(index): count for index, count in values["norm_histogram"].items()}
    return RunRow(**values)


def read_runs(session: Session, query: Select[Any]) -> list[RunRow]:
    return [run_row(row) for row in session.execute(query)]


@dataclass(frozen=True)
class PointRow:
    """One stored point with its run's identity. `grad_norm` None: the loss diverged before
    backward computed a norm."""

    run_id: int
    cell_index: int
    lr: float
    clipping: str
    seed: int
    outcome: RunOutcome | None
    step: int
    loss: float
    grad_norm: float | None
    clipped: bool


def select_points(*where: Any) -> Select[Any]:
    """Points joined with their runs and cells, in grid order then step; read them with `point_row`."""
    return (select(Run.id, Run.cell_index, Cell.lr, Cell.clip_label, Run.seed, Run.outcome, RunPoint.step,
                   RunPoint.loss, RunPoint.grad_norm, RunPoint.clipped, Run.trigger, Run.diverged_at_step)
            .join(Run, RunPoint.run_id == Run.id).join(Cell, _ON_CELL)
            .where(*where).order_by(Run.cell_index, Run.seed, RunPoint.step))


def point_row(row: Any) -> PointRow:
    *identity, step, loss, grad_norm, clipped, trigger, diverged_at_step = row
    if grad_norm is None and trigger == Trigger.NONFINITE_GRAD and step == diverged_at_step:
        grad_norm = math.nan
    return PointRow(*identity, step, math.nan if loss is None else loss, grad_norm, clipped)


def stream(factory: sessionmaker[Session], query: Select[Any], convert: Any,
           batch: int = 10_000) -> Iterator[list[Any]]:
    """`query`'s rows, converted, in batches from the database's cursor (server-side on
    PostgreSQL), for readers that must not hold a whole sweep in memory."""
    with factory() as session:
        result = session.execute(query.execution_options(yield_per=batch))
        for partition in result.partitions():
            yield [convert(row) for row in partition]
