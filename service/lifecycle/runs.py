"""Run state changes: pending → an outcome, once. Results, failures, attempts.

A result is keyed by (sweep, cell, seed). It is stored only if that run has no final outcome yet,
so a result reported twice (a re-claimed sweep, a retried trial) is stored once, and its points go
in with the same transaction as the outcome that guards them.
"""

from __future__ import annotations

import math
from typing import Any, Collection, Sequence

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from service.clock import now
from service.db.models import Run
from service.db.points import PointValues, load_points
from service.lifecycle.estimates import keep_steps_estimates
from service.lifecycle.report import RunReport
from service.states import RunOutcome

# The report's numbers stored as they are (NaN becomes NULL: db/types.NanAsNull).
_STORED_FIELDS = ("diverged_at_step", "converged_at_step", "steps_done", "initial_loss", "final_loss", "min_loss",
                  "final_eval_loss", "clipped_steps", "max_grad_norm", "divergence_grad_norm")

Chunk = tuple[int, Sequence[int]]  # (cell_index, seeds): the runs one trial trains


def _nan_to_none(value: Any) -> Any:
    """NaN is stored as NULL; the executemany UPDATE below binds values without the column types."""
    return None if isinstance(value, float) and math.isnan(value) else value


def store_results(session: Session, sweep_id: int, reports: Sequence[RunReport]) -> int:
    """Store finished runs and their points; returns how many were new.

    A batch costs three statements whatever its size: one SELECT of which runs still lack an
    outcome, one executemany UPDATE of those, and one bulk load of their points (COPY on
    PostgreSQL, an executemany INSERT elsewhere); a cell whose last run it stores gets its
    steps-to-target estimate computed and kept (lifecycle/estimates.py). On PostgreSQL the SELECT
    locks the runs it picks until the commit; on SQLite writers are serialized anyway. Should
    another writer still store one of them in between, the points' primary key (run_id, step)
    fails this transaction as a whole, and the caller's retry finds that run final and skips it.
    """
    by_key: dict[tuple[int, int], RunReport] = {}
    for report in reports:
        by_key.setdefault((report.cell_index, report.seed), report)
    run_ids: dict[tuple[int, int], int] = {}
    keys = list(by_key)
    for start in range(0, len(keys), 500):
        rows = session.execute(
            select(Run.id, Run.cell_index, Run.seed)
            .where(Run.sweep_id == sweep_id, Run.outcome.is_(None),
                   tuple_(Run.cell_index, Run.seed).in_(keys[start:start + 500]))
            .with_for_update()  # PostgreSQL: no other writer finalizes them before our UPDATE
        )
        run_ids.update({(cell, seed): run_id for run_id, cell, seed in rows})
    if not run_ids:
        return 0
    finished_at = now()
    runs = Run.__table__
    updates, points = [], []
    for key, run_id in run_ids.items():
        report = by_key[key]
        run = report.run
        updates.append({
            "b_id": run_id, "b_outcome": RunOutcome(run.outcome.value), "b_device": report.device,
            "b_node": report.node, "b_finished_at": finished_at,
            "b_trigger": run.trigger.value if run.trigger else None,
            "b_norm_histogram": {str(index): count for index, count in run.norm_histogram.items()},
            **{f"b_{name}": _nan_to_none(getattr(run, name)) for name in _STORED_FIELDS},
        })
        points.extend(_point_values(run_id, run.points))
    columns = ("outcome", "device", "node", "finished_at", "trigger", "norm_histogram", *_STORED_FIELDS)
    session.execute(
        update(runs).where(runs.c.id == bindparam("b_id"), runs.c.outcome.is_(None))
        .values({name: bindparam(f"b_{name}") for name in columns}),
        updates,
    )
    load_points(session, points)
    keep_steps_estimates(session, sweep_id, {cell for cell, _ in run_ids})
    return len(updates)


def _point_values(run_id: int, points: Sequence[tuple[int, float, float | None, bool]]) -> list[PointValues]:
    # NaN to NULL inline (x == x is false only for NaN): this runs once per point.
    return [(run_id, step, loss if loss == loss else None,
             grad_norm if grad_norm == grad_norm else None, clipped)
            for step, loss, grad_norm, clipped in points]


def _unfinished_in(sweep_id: int, chunk: Chunk) -> Any:
    cell_index, seeds = chunk
    return (Run.sweep_id == sweep_id, Run.cell_index == cell_index, Run.seed.in_(list(seeds)),
            Run.outcome.is_(None))


def fail_runs(session: Session, sweep_id: int, cell_index: int, seeds: Sequence[int], error: str) -> int:
    """Mark the runs of a chunk that have no outcome yet `failed`, with the error."""
    result = session.execute(
        update(Run).where(*_unfinished_in(sweep_id, (cell_index, seeds)))
        .values(outcome=RunOutcome.FAILED, error=error, finished_at=now())
    )
    keep_steps_estimates(session, sweep_id, [cell_index])
    return result.rowcount or 0


def _runs_in(chunks: Collection[Chunk]) -> set[tuple[int, int]]:
    return {(cell_index, seed) for cell_index, seeds in chunks for seed in seeds}


def pending_runs(session: Session, sweep_id: int, in_flight: Collection[Chunk] = ()) -> list[tuple[int, int]]:
    """(cell_index, seed) of the runs that still need training, in grid order; not those
    `in_flight`, being trained now."""
    training = _runs_in(in_flight)
    rows = session.execute(
        select(Run.cell_index, Run.seed)
        .where(Run.sweep_id == sweep_id, Run.outcome.is_(None))
        .order_by(Run.cell_index, Run.seed)
    )
    return [(cell, seed) for cell, seed in rows if (cell, seed) not in training]


def count_attempts(session: Session, sweep_id: int, chunks: Sequence[Chunk], delta: int = 1) -> None:
    """Add `delta` to the attempts of the chunks' runs that have no outcome: +1 when a trial
    starts them, -1 when a worker stopped on purpose (not lost) gives them back, so an
    interrupted run keeps its retry budget."""
    for chunk in chunks:
        session.execute(update(Run).where(*_unfinished_in(sweep_id, chunk), Run.attempts + delta >= 0)
                        .values(attempts=Run.attempts + delta))


def fail_exhausted_runs(session: Session, sweep_id: int, max_attempts: int, error: str,
                        in_flight: Collection[Chunk] = ()) -> int:
    """Runs still without an outcome after `max_attempts` trainings end `failed` with `error`;
    not those `in_flight`, whose last attempt is training now."""
    training = _runs_in(in_flight)
    rows = session.execute(select(Run.id, Run.cell_index, Run.seed).where(
        Run.sweep_id == sweep_id, Run.outcome.is_(None), Run.attempts >= max_attempts)).all()
    ids = [run_id for run_id, cell_index, seed in rows if (cell_index, seed) not in training]
    for start in range(0, len(ids), 500):
        session.execute(update(Run).where(Run.id.in_(ids[start:start + 500]))
                        .values(outcome=RunOutcome.FAILED, error=error, finished_at=now()))
    keep_steps_estimates(session, sweep_id, {cell_index for _, cell_index, _ in rows})
    return len(ids)
