"""A finished cell's steps-to-target estimate, computed once by the writer that stores its last
outcome, in the same transaction.

The estimate is a seeded bootstrap (service/analysis/statistics.steps_to_target): 2,000
resamples of the cell's seeds, ~8 ms at 500 seeds and ~26 ms at 2,500. Computed by the summary,
it fell on the first request after the cell finished, which is what a running sweep's page was
waiting for each time a cell finished. Computed here from the same runs in the same order, it is
the same number; it is kept with the count of runs it is for, and a summary uses it only while
the cell still has that many (adaptive seeds add runs to a finished cell). A cell that finished
another way (a cancel, or before migration 0014) has none, and the summary computes it as before.
"""

from __future__ import annotations

from typing import Collection

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.analysis.statistics import Estimate, Unavailable, steps_to_target
from service.db.models import Cell, Run


def keep_steps_estimates(session: Session, sweep_id: int, cell_indexes: Collection[int]) -> int:
    """Compute and keep the estimate of each of `cell_indexes` whose runs all have an outcome
    now; returns how many were kept. Cells with runs still training are left as they are."""
    if not cell_indexes:
        return 0
    finished = session.scalars(select(Cell.cell_index).where(
        Cell.sweep_id == sweep_id, Cell.cell_index.in_(sorted(set(cell_indexes))),
        Cell.run_count > 0, Cell.run_count == Cell.done_count,
        Cell.steps_for_runs.is_distinct_from(Cell.run_count))).all()
    if not finished:
        return 0
    # Each cell's steps to target over its trained runs, in seed order: the summary's own input.
    steps: dict[int, list[int | None]] = {index: [] for index in finished}
    runs = dict.fromkeys(finished, 0)
    complete = set(finished)
    for index, outcome, step in session.execute(
            select(Run.cell_index, Run.outcome, Run.converged_at_step)
            .where(Run.sweep_id == sweep_id, Run.cell_index.in_(finished)).order_by(Run.cell_index, Run.seed)):
        runs[index] += 1
        if outcome is None:  # another writer's run added since the counts were read
            complete.discard(index)
        elif outcome.is_trained():
            steps[index].append(step)
    rows = [{"sweep_id": sweep_id, "cell_index": index, "steps_for_runs": runs[index],
             **stored(steps_to_target(steps[index], seed=index))} for index in sorted(complete)]
    if rows:
        session.execute(update(Cell), rows)  # by primary key, one executemany
    return len(rows)


def stored(estimate: Estimate | Unavailable) -> dict[str, float | str | None]:
    """An estimate as the cell's columns (read back by queries/summaries.py)."""
    if isinstance(estimate, Unavailable):
        return {"steps_median": None, "steps_low": None, "steps_high": None, "steps_unavailable": estimate.reason}
    return {"steps_median": estimate.value, "steps_low": estimate.low, "steps_high": estimate.high,
            "steps_unavailable": None}
