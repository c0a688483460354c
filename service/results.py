"""Writing training results into the database: idempotent, batched, one transaction per batch.

A result is keyed by (sweep, cell, seed). It is stored only if that run has no final outcome yet,
so a result reported twice (a re-claimed sweep, a retried trial) is stored once, and its points go
in with the same transaction as the outcome that guards them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from service.db.models import Run, RunOutcome, RunPoint

RUN_RESULT_FIELDS = ("trigger", "diverged_at_step", "converged_at_step", "steps_done", "initial_loss",
                     "final_loss", "min_loss", "final_eval_loss", "clipped_steps", "max_grad_norm",
                     "divergence_grad_norm")


@dataclass(frozen=True)
class ReportedRun:
    """One seed's result as the trainer reported it (see trainers.ray_adapter.result_payload)."""

    cell_index: int
    seed: int
    run: dict[str, Any]
    device: str | None = None
    node: str | None = None


def now() -> datetime:
    return datetime.now(timezone.utc)


def _finite_or_none(value: Any) -> Any:
    """NaN is stored as NULL (service.db.models.NanAsNull); COPY bypasses the column types."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _histogram(bins: dict[int, int] | None) -> dict[str, int] | None:
    """JSON keys are strings; None (a trainer that predates telemetry) stays None."""
    return None if bins is None else {str(index): count for index, count in bins.items()}


def store_results(session: Session, sweep_id: int, results: Sequence[ReportedRun]) -> int:
    """Store finished runs and their points; returns how many were new.

    A batch costs three statements whatever its size: one SELECT of which runs still lack an
    outcome, one executemany UPDATE of those, and one bulk load of their points (COPY on
    PostgreSQL, an executemany INSERT elsewhere). On PostgreSQL the SELECT locks the runs it picks
    until the commit; on SQLite writers are serialized anyway. Should another writer still store
    one of them in between, the points' primary key (run_id, step) fails this transaction as a
    whole, and the caller's retry finds that run final and skips it.
    """
    by_key: dict[tuple[int, int], ReportedRun] = {}
    for result in results:
        by_key.setdefault((result.cell_index, result.seed), result)
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
        result = by_key[key]
        updates.append({
            "b_id": run_id, "b_outcome": RunOutcome(result.run["outcome"]).value, "b_device": result.device,
            "b_node": result.node, "b_finished_at": finished_at,
            "b_norm_histogram": _histogram(result.run.get("norm_histogram")),
            **{f"b_{name}": _finite_or_none(result.run.get(name)) for name in RUN_RESULT_FIELDS},
        })
        # NaN to NULL inline (x == x is false only for NaN): this loop runs once per point.
        points.extend((run_id, step, loss if loss == loss else None,
                       grad_norm if grad_norm == grad_norm else None, bool(clipped))
                      for step, loss, grad_norm, clipped in result.run["points"])
    columns = ("outcome", "device", "node", "finished_at", "norm_histogram", *RUN_RESULT_FIELDS)
    session.execute(
        update(runs).where(runs.c.id == bindparam("b_id"), runs.c.outcome.is_(None))
        .values({name: bindparam(f"b_{name}") for name in columns}),
        updates,
    )
    _load_points(session, points)
    return len(updates)


def _load_points(session: Session, rows: list[tuple[int, int, float | None, float | None, bool]]) -> None:
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        # COPY: psycopg's executemany sends one INSERT per row; COPY streams them all at once, and
        # in binary with the column types declared no value is formatted as text or parsed back.
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy("COPY run_points (run_id, step, loss, grad_norm, clipped) FROM STDIN (FORMAT BINARY)"
                             ) as copy:
                copy.set_types(["int4", "int4", "float8", "float8", "bool"])
                for row in rows:
                    copy.write_row(row)
        return
    if connection.dialect.name == "sqlite":
        # The rows are final (NaN already None, bool a type sqlite3 binds): sqlite3's executemany
        # takes them as they are, where an insert() would run five type processors per row.
        connection.exec_driver_sql("INSERT INTO run_points (run_id, step, loss, grad_norm, clipped) "
                                   "VALUES (?, ?, ?, ?, ?)", rows)
        return
    table = RunPoint.__table__
    connection.execute(table.insert(), [dict(zip(("run_id", "step", "loss", "grad_norm", "clipped"), row))
                                        for row in rows])


def fail_runs(session: Session, sweep_id: int, cell_index: int, seeds: Sequence[int], error: str) -> int:
    """Mark the runs of a chunk that have no outcome yet `failed`, with the error."""
    result = session.execute(
        update(Run).where(*_unfinished_in(sweep_id, (cell_index, seeds)))
        .values(outcome=RunOutcome.FAILED.value, error=error, finished_at=now())
    )
    return result.rowcount or 0


def pending_runs(session: Session, sweep_id: int) -> list[tuple[int, int]]:
    """(cell_index, seed) of the runs that still need training, in grid order."""
    rows = session.execute(
        select(Run.cell_index, Run.seed)
        .where(Run.sweep_id == sweep_id, Run.outcome.is_(None))
        .order_by(Run.cell_index, Run.seed)
    )
    return [(cell, seed) for cell, seed in rows]


Chunk = tuple[int, Sequence[int]]  # (cell_index, seeds): the runs one trial trains


def _unfinished_in(sweep_id: int, chunk: Chunk) -> Any:
    cell_index, seeds = chunk
    return (Run.sweep_id == sweep_id, Run.cell_index == cell_index, Run.seed.in_(list(seeds)),
            Run.outcome.is_(None))


def count_attempts(session: Session, sweep_id: int, chunks: Sequence[Chunk], delta: int = 1) -> None:
    """Add `delta` to the attempts of the chunks' runs that have no outcome: +1 when a trial
    starts them, -1 when a worker stopped on purpose (not lost) gives them back, so an
    interrupted run keeps its retry budget."""
    for chunk in chunks:
        session.execute(update(Run).where(*_unfinished_in(sweep_id, chunk), Run.attempts + delta >= 0)
                        .values(attempts=Run.attempts + delta))


def fail_exhausted_runs(session: Session, sweep_id: int, max_attempts: int, error: str) -> int:
    """Runs still without an outcome after `max_attempts` trainings end `failed` with `error`."""
    result = session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None), Run.attempts >= max_attempts)
        .values(outcome=RunOutcome.FAILED.value, error=error, finished_at=now())
    )
    return result.rowcount or 0
