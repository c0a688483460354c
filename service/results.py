"""Writing training results into the database: idempotent, batched, one transaction per batch.

A result is keyed by (sweep, cell, seed). It is stored only if that run has no final outcome yet,
so a result reported twice (a re-claimed sweep, a retried trial) is stored once, and its points go
in with the same transaction as the outcome that guards them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from service.db.models import Run, RunOutcome, RunPoint

RUN_RESULT_FIELDS = ("trigger", "diverged_at_step", "converged_at_step", "steps_done", "initial_loss",
                     "final_loss", "min_loss", "final_eval_loss", "clipped_steps", "max_grad_norm")


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


def store_results(session: Session, sweep_id: int, results: Sequence[ReportedRun]) -> int:
    """Store finished runs and their points; returns how many were new."""
    stored = 0
    point_rows: list[dict[str, Any]] = []
    finished_at = now()
    for result in results:
        values = {name: result.run.get(name) for name in RUN_RESULT_FIELDS}
        run_id = session.execute(
            update(Run)
            .where(Run.sweep_id == sweep_id, Run.cell_index == result.cell_index,
                   Run.seed == result.seed, Run.outcome.is_(None))
            .values(outcome=RunOutcome(result.run["outcome"]).value, device=result.device,
                    node=result.node, finished_at=finished_at, **values)
            .returning(Run.id)
        ).scalar_one_or_none()
        if run_id is None:
            continue  # already final: a duplicate report
        stored += 1
        point_rows.extend(
            {"run_id": run_id, "step": step, "loss": loss, "grad_norm": grad_norm, "clipped": clipped}
            for step, loss, grad_norm, clipped in result.run["points"]
        )
    if point_rows:
        # One executemany of plain Core inserts: no ORM unit of work per point.
        session.execute(insert(RunPoint), point_rows)
    return stored


def fail_runs(session: Session, sweep_id: int, cell_index: int, seeds: Sequence[int], error: str) -> int:
    """Mark the runs of a chunk that have no outcome yet `failed`, with the error."""
    result = session.execute(
        update(Run)
        .where(Run.sweep_id == sweep_id, Run.cell_index == cell_index, Run.seed.in_(list(seeds)),
               Run.outcome.is_(None))
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


def start_attempt(session: Session, sweep_id: int) -> int:
    """Count a training attempt for every run still without an outcome (all of them are trained
    in the round about to start). Returns how many."""
    result = session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None)).values(attempts=Run.attempts + 1)
    )
    return result.rowcount or 0


def undo_attempt(session: Session, sweep_id: int) -> None:
    """A worker stopped on purpose (not lost): its interrupted runs keep their retry budget."""
    session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None), Run.attempts > 0)
        .values(attempts=Run.attempts - 1)
    )


def fail_exhausted_runs(session: Session, sweep_id: int, max_attempts: int, error: str) -> int:
    """Runs still without an outcome after `max_attempts` trainings end `failed` with `error`."""
    result = session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.outcome.is_(None), Run.attempts >= max_attempts)
        .values(outcome=RunOutcome.FAILED.value, error=error, finished_at=now())
    )
    return result.rowcount or 0
