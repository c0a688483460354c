"""A sweep's cell summaries, computed again only for the cells whose runs changed.

A cell's summary (service/analysis/summary.py) is a function of its own runs and, for the paired
comparison, of the baseline cell at its learning rate; and a run's outcome is written once (every
write to it is guarded by `outcome IS NULL`). So a cell's summary stays the same for as long as
its count of runs, its count of runs with an outcome and its baseline's count with an outcome
stay the same: those counts key a kept summary. The cells keep both counts (triggers on runs
update them in the transaction that writes a run: migration 0013), so one read of a row per
cell finds the cells that changed, and only their runs are read and their statistics computed.
A running sweep trains a few cells at a time, so its summary costs about the runs of the cells
in training, not the runs of the sweep; a finished sweep's cells are all kept after its first
summary.

A changed cell's runs are kept too (`KeptCells.runs`, bounded by their number), with the ids of
those that have an outcome: the next time the cell changes, one index-only scan finds the runs
that got an outcome since, and only those are read. A cell of thousands of seeds in training
then costs its new runs, not its thousands, to bring up to date. Runs added to a cell (adaptive
seeds) make it read whole again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.analysis.statistics import Estimate, Unavailable
from service.analysis.summary import CellSummary, summarize
from service.db.models import Cell, Run
from service.db.rows import OutcomeRow, run_row, select_runs
from service.kept import Kept
from trainers.clipping import BASELINE


@dataclass
class CellRuns:
    """A cell's runs as read: each by seed, and the ids of those that had an outcome then. Never
    changed once kept (requests run on a thread pool): an update is a new one."""

    rows: dict[int, OutcomeRow] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)

    def add(self, run_id: int, row: OutcomeRow) -> None:
        self.rows[row.seed] = row
        if row.outcome is not None:
            self.done.add(run_id)


class KeptCells(Kept[CellSummary]):
    """Cell summaries by key, bounded by the runs they summarize (a summary's size grows with its
    cell's runs: a point per step where one converged); and the runs of cells read, bounded by
    their number (`max_rows`: ~1 KB each)."""

    def __init__(self, max_runs: int, max_rows: int = 100_000) -> None:
        super().__init__(max_runs, lambda cell: cell.runs)
        self.runs: Kept[CellRuns] = Kept(max_rows, lambda cell: len(cell.rows))


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
    counts: dict[int, _Counts] = {}
    estimates: dict[int, tuple[int, Estimate | Unavailable]] = {}  # kept by the writer (lifecycle/estimates.py)
    for index, lr, method, runs, done, for_runs, *estimate in session.execute(
            select(Cell.cell_index, Cell.lr, Cell.clip_method, Cell.run_count, Cell.done_count, Cell.steps_for_runs,
                   Cell.steps_median, Cell.steps_low, Cell.steps_high, Cell.steps_unavailable)
            .where(Cell.sweep_id == sweep_id, Cell.run_count > 0)):
        counts[index] = _Counts(lr, method == BASELINE, runs, done)
        if for_runs is not None and (kept_estimate := _estimate(*estimate)) is not None:
            estimates[index] = (for_runs, kept_estimate)
    keys = _keys(sweep_id, counts)
    found = {index: cell for index in counts if (cell := kept.get(keys[index])) is not None}
    done = {index: counts[index].done for index in found}
    missing = set(counts) - set(found)
    if missing:
        baselines = {c.lr: index for index, c in counts.items() if c.baseline}
        need = missing | {baselines[counts[i].lr] for i in missing if counts[i].lr in baselines}
        runs = _cell_runs(session, sweep_id, need, counts, kept.runs)
        # Keyed by what was read: a run that finished after the count above is in these rows.
        read = {index: _Counts(counts[index].lr, counts[index].baseline, len(cell.rows), len(cell.done))
                for index, cell in runs.items()}
        read_keys = _keys(sweep_id, read)
        rows = [row for cell in runs.values() for row in cell.rows.values()]
        for cell in summarize(rows, only=missing, estimates=estimates):  # the baselines read for them are kept already
            kept.put(read_keys[cell.cell_index], cell)
            found[cell.cell_index], done[cell.cell_index] = cell, read[cell.cell_index].done
    return [found[index] for index in sorted(found)], sum(done.values())


def _estimate(median: float | None, low: float | None, high: float | None,
              unavailable: str | None) -> Estimate | Unavailable | None:
    """The steps-to-target estimate a cell's columns hold (lifecycle/estimates.stored's inverse)."""
    if unavailable is not None:
        return Unavailable(unavailable)
    return None if median is None or low is None or high is None else Estimate(median, low, high)


def _cell_runs(session: Session, sweep_id: int, need: set[int], counts: dict[int, _Counts],
               kept: Kept[CellRuns]) -> dict[int, CellRuns]:
    """The runs of the cells in `need`: those kept brought up to date by reading the runs that
    got an outcome since, the others (and any with runs added since) read whole."""
    known = {index: cell for index in need
             if (cell := kept.get((sweep_id, index))) is not None and len(cell.rows) == counts[index].runs}
    whole = need - set(known)
    out: dict[int, CellRuns] = {}
    if known:  # the ids of the runs with an outcome, off the (sweep, cell, outcome) index alone
        new = [run_id for index, run_id in session.execute(
            select(Run.cell_index, Run.id).where(Run.sweep_id == sweep_id, Run.cell_index.in_(sorted(known)),
                                                 Run.outcome.is_not(None)))
               if run_id not in known[index].done]
        out = {index: CellRuns(dict(cell.rows), set(cell.done)) for index, cell in known.items()}
        for start in range(0, len(new), 10_000):  # bounded lists of bound parameters
            for run_id, row in _read(session, Run.id.in_(new[start:start + 10_000])):
                out[row.cell_index].add(run_id, row)
    if whole:
        every = whole == set(counts)
        for run_id, row in _read(session, Run.sweep_id == sweep_id,
                                 *([] if every else [Run.cell_index.in_(sorted(whole))])):
            out.setdefault(row.cell_index, CellRuns()).add(run_id, row)
    for index, cell in out.items():
        kept.put((sweep_id, index), cell)
    return out


def _read(session: Session, *where: Any) -> list[tuple[int, OutcomeRow]]:
    """The runs matching `where`, each with its id."""
    return [(row[-1], run_row(row[:-1], OutcomeRow))
            for row in session.execute(select_runs(*where, row_type=OutcomeRow).add_columns(Run.id))]
