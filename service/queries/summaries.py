"""A sweep's cell summaries, computed again only for the cells whose runs changed.

A cell's summary (service/analysis/summary.py) is a function of its own runs and, for the paired
comparison, of the baseline cell at its learning rate; and a run's outcome is written once (every
write to it is guarded by `outcome IS NULL`). So a cell's summary stays the same for as long as
its count of runs, its count of runs with an outcome and its baseline's count with an outcome
stay the same: those counts key a kept summary. One grouped count per request finds the cells
that changed, and only their runs are read and their statistics computed. A running sweep trains
a few cells at a time, so its summary costs about the runs of the cells in training, not the
runs of the sweep; a finished sweep's cells are all kept after its first summary.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.analysis.summary import CellSummary, summarize
from service.db.models import Cell, Run
from service.db.rows import OutcomeRow, read_runs, select_runs
from service.kept import Kept
from trainers.clipping import BASELINE


class KeptCells(Kept[CellSummary]):
    """Cell summaries by key, bounded by the runs they summarize (a summary's size grows with its
    cell's runs: a point per step where one converged)."""

    def __init__(self, max_runs: int) -> None:
        super().__init__(max_runs, lambda cell: cell.runs)


class _Counts(NamedTuple):
    lr: float
    baseline: bool
    runs: int
    done: int  # runs with an outcome (failed and cancelled ones too)


def _keys(sweep_id: int, counts: dict[int, _Counts]) -> dict[int, tuple[int, ...]]:
    """Each cell's key: what its summary is computed from."""
    baseline_done = {c.lr: c.done for c in counts.values() if c.baseline}
    return {index: (sweep_id, index, c.runs, c.done, -1 if c.baseline else baseline_done.get(c.lr, -1))
            for index, c in counts.items()}


def cell_summaries(session: Session, sweep_id: int, kept: KeptCells) -> tuple[list[CellSummary], int]:
    """Every cell's summary, in cell order, as `summarize` gives it from all of the sweep's runs;
    and how many runs with an outcome they were computed from."""
    counts = {index: _Counts(lr, method == BASELINE, runs, done) for index, lr, method, runs, done in session.execute(
        select(Cell.cell_index, Cell.lr, Cell.clip_method, func.count(), func.count(Run.outcome))
        .join(Run, (Run.sweep_id == Cell.sweep_id) & (Run.cell_index == Cell.cell_index))
        .where(Cell.sweep_id == sweep_id).group_by(Cell.cell_index, Cell.lr, Cell.clip_method))}
    keys = _keys(sweep_id, counts)
    found = {index: cell for index in counts if (cell := kept.get(keys[index])) is not None}
    done = {index: counts[index].done for index in found}
    missing = set(counts) - set(found)
    if missing:
        baselines = {c.lr: index for index, c in counts.items() if c.baseline}
        need = missing | {baselines[counts[i].lr] for i in missing if counts[i].lr in baselines}
        where = [Run.sweep_id == sweep_id] + ([Run.cell_index.in_(sorted(need))] if need != set(counts) else [])
        rows: list[OutcomeRow] = read_runs(session, select_runs(*where, row_type=OutcomeRow), OutcomeRow)
        # Keyed by what was read: a run that finished after the count above is in these rows.
        read: dict[int, _Counts] = {}
        for row in rows:
            c = read.get(row.cell_index) or _Counts(row.lr, row.clip_method == BASELINE, 0, 0)
            read[row.cell_index] = c._replace(runs=c.runs + 1, done=c.done + (row.outcome is not None))
        read_keys = _keys(sweep_id, read)
        for cell in summarize(rows, only=missing):  # the baselines read for them are kept already
            kept.put(read_keys[cell.cell_index], cell)
            found[cell.cell_index], done[cell.cell_index] = cell, read[cell.cell_index].done
    return [found[index] for index in sorted(found)], sum(done.values())
