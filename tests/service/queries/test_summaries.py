"""cell_summaries: the summary computed again only for the cells that changed, from their kept
runs and the runs that got an outcome since, is exactly the one computed from every run, on random
sweeps as their results arrive (NaN and infinite norms, every outcome, failed chunks, a cancelled
cell, seeds added as adaptive seeds add them), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import random

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.statistics import Estimate
from service.analysis.summary import summarize
from service.db.models import Cell, Run
from service.db.session import session_scope
from service.lifecycle.runs import fail_runs
from service.queries.summaries import KeptCells, cell_summaries
from service.queries.sweeps import summary_rows
from service.states import RunOutcome
from tests.factories import SPEC, make_sweep, report, store

RANDOM_SPEC = {**SPEC, "learning_rates": [0.01, 0.1, 0.5],
               "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0},
                            {"method": "value", "clip_value": 1.0}],
               "seeds": 12, "budget": {"max_steps": 50}}


def random_report(rng: random.Random, cell: int, seed: int):  # noqa: ANN201 (a RunReport)
    norm = rng.choice([rng.uniform(0.1, 50.0), math.inf, math.nan, None])
    histogram = {rng.randrange(0, 40): rng.randrange(1, 20) for _ in range(rng.randrange(0, 4))}
    common = {"max_grad_norm": norm, "clipped_steps": rng.randrange(0, 50), "norm_histogram": histogram}
    kind = rng.choice(["diverged", "converged", "unconverged"])
    if kind == "diverged":
        step = rng.randrange(1, 50)
        trigger = rng.choice(["loss_explosion", "nonfinite_grad", "nonfinite_loss"])
        return report(cell, seed, "diverged", trigger=trigger, diverged_at_step=step, steps_done=step,
                      divergence_grad_norm=rng.choice([norm, rng.uniform(1.0, 1e6), math.nan, None]),
                      final_loss=rng.choice([math.nan, math.inf, 1e12]), **common)
    if kind == "converged":
        step = rng.randrange(1, 50)
        return report(cell, seed, "converged", converged_at_step=step, steps_done=step, **common)
    return report(cell, seed, steps_done=50, **common)


def test_kept_cell_summaries_equal_the_summary_of_every_run(session_factory: sessionmaker[Session]) -> None:
    for sweep_seed in range(3):
        rng = random.Random(sweep_seed)
        sweep_id = make_sweep(session_factory, RANDOM_SPEC)
        # tiny: five cells' summaries and runs, evicted all along
        kept, tiny = KeptCells(max_runs=10_000), KeptCells(max_runs=60, max_rows=60)
        pending = [(cell, seed) for cell in range(9) for seed in range(12)]
        added = False
        rng.shuffle(pending)
        while pending:
            size = rng.randrange(1, 15)
            batch, pending = pending[:size], pending[size:]
            action = rng.random()
            if action < 0.1:  # a chunk whose code raised
                with session_scope(session_factory) as session:
                    for cell, seed in batch:
                        fail_runs(session, sweep_id, cell, [seed], "RuntimeError: boom")
            elif action < 0.22 and not added:  # a round of adaptive seeds: two more in every cell
                added = True
                more = [(cell, seed) for cell in range(9) for seed in (12, 13)]
                with session_scope(session_factory) as session:
                    session.execute(insert(Run), [{"sweep_id": sweep_id, "cell_index": cell, "seed": seed}
                                                  for cell, seed in more])
                pending = batch + pending + more
            elif action < 0.27:  # a cancel: the cell's runs without an outcome end `cancelled`
                cell = batch[0][0]
                with session_scope(session_factory) as session:
                    session.execute(update(Run).where(Run.sweep_id == sweep_id, Run.cell_index == cell,
                                                      Run.outcome.is_(None)).values(outcome=RunOutcome.CANCELLED))
                pending = [p for p in pending if p[0] != cell]
            else:
                store(session_factory, sweep_id, [random_report(rng, cell, seed) for cell, seed in batch])
            with session_scope(session_factory) as session:
                # the counts the cells keep (triggers on runs) are the runs' own
                kept_counts = session.execute(select(Cell.cell_index, Cell.run_count, Cell.done_count)
                                              .where(Cell.sweep_id == sweep_id).order_by(Cell.cell_index)).all()
                assert [tuple(c) for c in kept_counts] == [tuple(c) for c in session.execute(
                    select(Run.cell_index, func.count(), func.count(Run.outcome)).where(Run.sweep_id == sweep_id)
                    .group_by(Run.cell_index).order_by(Run.cell_index))]
                everything = summarize(summary_rows(session, sweep_id))
                done = len(session.scalars(select(Run.seed).where(Run.sweep_id == sweep_id,
                                                                   Run.outcome.is_not(None))).all())
                for cache in (kept, tiny):
                    cells, finished = cell_summaries(session, sweep_id, cache)
                    # repr: NaN equals NaN there, as it should here
                    assert repr(cells) == repr(everything) and finished == done


def _steps_columns(session: Session, sweep_id: int, cell: int) -> tuple:
    return tuple(session.execute(select(Cell.steps_for_runs, Cell.steps_median, Cell.steps_low, Cell.steps_high,
                                        Cell.steps_unavailable)
                                 .where(Cell.sweep_id == sweep_id, Cell.cell_index == cell)).one())


def test_the_writer_of_a_cells_last_run_keeps_its_estimate_and_the_summary_reads_it(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 12})
    # 7 of 12 converge: the median run did, and resamples where fewer than half did make the
    # upper bound infinite, which both databases must keep.
    reports = [report(0, seed, "converged", converged_at_step=10 * (seed + 1)) if seed < 7 else report(0, seed)
               for seed in range(12)]
    store(session_factory, sweep_id, reports[:11])
    with session_scope(session_factory) as session:
        assert _steps_columns(session, sweep_id, 0) == (None,) * 5  # a run still training: not yet
    store(session_factory, sweep_id, reports[11:])
    with session_scope(session_factory) as session:  # a cell ended by a failed chunk gets one too
        fail_runs(session, sweep_id, 1, list(range(12)), "RuntimeError: boom")
    with session_scope(session_factory) as session:
        computed = {c.cell_index: c.steps_to_target for c in summarize(summary_rows(session, sweep_id))}
        for_runs, median, low, high, unavailable = _steps_columns(session, sweep_id, 0)
        assert (for_runs, unavailable) == (12, None) and math.isinf(high)
        assert computed[0] == Estimate(median, low, high)
        assert _steps_columns(session, sweep_id, 1) == (12, None, None, None, computed[1].reason)
        # The summary takes the kept estimate instead of bootstrapping again: a changed one shows.
        session.execute(update(Cell).where(Cell.sweep_id == sweep_id, Cell.cell_index == 0)
                        .values(steps_median=-1.0))
    with session_scope(session_factory) as session:
        cells, _ = cell_summaries(session, sweep_id, KeptCells(max_runs=10_000))
        assert cells[0].steps_to_target == Estimate(-1.0, low, high)
    # A round of adaptive seeds: the kept estimate is for 12 runs, so the summary computes its own
    # until the writer of the 13th keeps a new one.
    with session_scope(session_factory) as session:
        session.execute(insert(Run), [{"sweep_id": sweep_id, "cell_index": 0, "seed": 12}])
    store(session_factory, sweep_id, [report(0, 12, "converged", converged_at_step=5)])
    with session_scope(session_factory) as session:
        assert _steps_columns(session, sweep_id, 0)[0] == 13
        cells, _ = cell_summaries(session, sweep_id, KeptCells(max_runs=10_000))
        assert repr(cells) == repr(summarize(summary_rows(session, sweep_id)))
        session.execute(update(Cell).where(Cell.sweep_id == sweep_id, Cell.cell_index == 0)
                        .values(steps_for_runs=12, steps_median=-1.0))  # as if stale
    with session_scope(session_factory) as session:
        cells, _ = cell_summaries(session, sweep_id, KeptCells(max_runs=10_000))
        assert cells[0].steps_to_target == summarize(summary_rows(session, sweep_id))[0].steps_to_target
