"""Submitting a sweep and storing its results, on SQLite and PostgreSQL: cells and pending runs,
idempotent results, faithful non-finite values, failures, and how a sweep ends."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Cell, Run, RunPoint, Sweep
from service.db.rows import read_runs, select_runs
from service.db.session import session_scope
from service.errors import SpecError
from service.grid import cells
from service.lifecycle.queue import finish_sweep
from service.lifecycle.runs import fail_runs, pending_runs
from service.lifecycle.submit import Limits, create_sweep
from service.queries.sweeps import list_sweeps, outcome_counts
from service.spec import parse_spec
from tests.factories import SPEC, make_sweep, report, store
from trainers import TrainConfig


def test_create_stores_the_sweep_its_cells_and_one_pending_run_per_cell_and_seed(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.status == "queued" and sweep.runs_total == 12
        assert sweep.spec["clipping"][1] == {"method": "norm", "max_norm": 1.0, "norm_type": 2}
        assert len(pending_runs(session, sweep_id)) == 12
        stored = session.scalars(select(Cell).where(Cell.sweep_id == sweep_id).order_by(Cell.cell_index)).all()
    grid = cells(parse_spec(SPEC))
    assert [(c.lr, c.clip_label, c.clip_method, c.clip_params) for c in stored] == [
        (0.1, "none", "none", {}), (0.1, "norm(max_norm=1.0)", "norm", {"max_norm": 1.0, "norm_type": 2}),
        (0.5, "none", "none", {}), (0.5, "norm(max_norm=1.0)", "norm", {"max_norm": 1.0, "norm_type": 2})]
    for cell, planned in zip(stored, grid):
        assert cell.config == planned.config.to_dict()
        assert cell.config_hash == TrainConfig.from_dict(cell.config).content_hash() == planned.config.content_hash()


def test_the_same_cell_has_the_same_hash_in_any_sweep_and_another_cell_another(
        session_factory: sessionmaker[Session]) -> None:
    first = make_sweep(session_factory)
    second = make_sweep(session_factory, {**SPEC, "learning_rates": [0.5, 0.9], "seeds": 7, "name": "other"})
    with session_scope(session_factory) as session:
        hashes = {sweep_id: dict(session.execute(select(Cell.cell_index, Cell.config_hash)
                                                 .where(Cell.sweep_id == sweep_id)).all())
                  for sweep_id in (first, second)}
    assert hashes[first][2] == hashes[second][0] and hashes[first][3] == hashes[second][1]  # lr 0.5, both arms
    assert len(set(hashes[first].values()) | set(hashes[second].values())) == 6


def test_a_grid_over_the_limit_is_refused_and_stores_nothing(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(SpecError, match="CLIPSWEEP_MAX_RUNS_PER_SWEEP"):
        with session_scope(session_factory) as session:
            create_sweep(session, parse_spec(SPEC), limits=Limits(max_runs=11))
    with session_scope(session_factory) as session:
        for table in (Sweep, Cell, Run):
            assert session.scalar(select(func.count()).select_from(table)) == 0


def test_a_result_reported_twice_is_stored_once(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    assert store(session_factory, sweep_id, [report(0, 0), report(0, 1)]) == 2
    assert store(session_factory, sweep_id, [report(0, 0, outcome="diverged")]) == 0
    with session_scope(session_factory) as session:
        run = session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.cell_index == 0,
                                                Run.seed == 0)).one()
        assert run.outcome == "unconverged"  # the first report stands
        assert session.scalar(select(func.count()).select_from(RunPoint).where(RunPoint.run_id == run.id)) == 2
        assert len(pending_runs(session, sweep_id)) == 10


def test_a_run_reported_twice_in_one_batch_is_stored_once(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    assert store(session_factory, sweep_id, [report(0, 0), report(0, 0, outcome="diverged")]) == 1
    with session_factory() as session:
        run = session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.seed == 0, Run.cell_index == 0)).one()
        assert run.outcome == "unconverged"
        n_points = session.scalar(select(func.count()).select_from(RunPoint).where(RunPoint.run_id == run.id))
        assert n_points == len(report(0, 0).run.points)


def test_every_reported_field_is_stored(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [report(1, 2, outcome="converged", converged_at_step=7, steps_done=7,
                                             clipped_steps=3, norm_histogram={-4: 2, 5: 5}, final_eval_loss=0.01)])
    with session_scope(session_factory) as session:
        [run] = read_runs(session, select_runs(Run.sweep_id == sweep_id, Run.outcome.is_not(None)))
    assert (run.outcome, run.converged_at_step, run.steps_done, run.clipped_steps) == ("converged", 7, 7, 3)
    assert (run.initial_loss, run.final_loss, run.min_loss, run.final_eval_loss) == (0.3, 0.2, 0.1, 0.01)
    assert (run.max_grad_norm, run.norm_histogram, run.device, run.node) == (2.0, {-4: 2, 5: 5}, "cpu", "test")
    assert run.lr == 0.1 and run.clipping == "norm(max_norm=1.0)"


def test_deleting_a_sweep_deletes_its_cells_runs_and_points_and_nothing_else(
        session_factory: sessionmaker[Session]) -> None:
    """run_points has no foreign key (migration 0004): a trigger on runs does the cascade, also
    when the runs go by their own cascade from the sweep."""
    kept, deleted = make_sweep(session_factory), make_sweep(session_factory)
    for sweep_id in (kept, deleted):
        assert store(session_factory, sweep_id, [report(0, 0), report(1, 2)]) == 2
    with session_scope(session_factory) as session:
        session.execute(delete(Sweep).where(Sweep.id == deleted))
    with session_scope(session_factory) as session:
        assert set(session.scalars(select(Run.sweep_id).distinct())) == {kept}
        assert set(session.scalars(select(Cell.sweep_id).distinct())) == {kept}
        run_ids = set(session.scalars(select(Run.id).where(Run.sweep_id == kept)))
        assert set(session.scalars(select(RunPoint.run_id).distinct())) <= run_ids
        assert session.scalar(select(func.count()).select_from(RunPoint)) == 4
        session.execute(delete(Run).where(Run.sweep_id == kept, Run.cell_index == 0))
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(RunPoint)) == 2


def test_non_finite_values_survive_the_round_trip(session_factory: sessionmaker[Session]) -> None:
    """NaN is stored as NULL on both backends and read back as NaN where the trigger says so;
    infinities are stored as they are."""
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [
        report(2, 0, outcome="diverged", trigger="nonfinite_loss", diverged_at_step=4, final_loss=math.nan,
               points=[[0, 0.3, 2.0, False], [4, math.nan, None, False]]),
        report(2, 1, outcome="diverged", trigger="grad_explosion", diverged_at_step=3, max_grad_norm=math.inf,
               final_loss=math.inf, points=[[3, math.inf, math.inf, False]]),
        report(2, 2, outcome="diverged", trigger="nonfinite_grad", diverged_at_step=2, max_grad_norm=math.nan,
               points=[[2, 5.0, math.nan, False]])])
    with session_scope(session_factory) as session:
        runs = {r.seed: r for r in read_runs(session, select_runs(Run.sweep_id == sweep_id, Run.cell_index == 2))}
        stored = session.execute(select(Run.final_loss, Run.max_grad_norm).where(
            Run.sweep_id == sweep_id, Run.cell_index == 2).order_by(Run.seed)).all()
        points = session.execute(select(RunPoint.loss, RunPoint.grad_norm).where(RunPoint.run_id == runs[1].id)).one()
    assert math.isnan(runs[0].final_loss)
    assert runs[1].final_loss == math.inf and runs[1].max_grad_norm == math.inf
    assert math.isnan(runs[2].max_grad_norm)
    assert stored[0][0] is None and stored[2][1] is None  # NaN is NULL in the table itself
    assert points == (math.inf, math.inf)


def test_a_failed_chunk_marks_only_its_unfinished_runs(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    store(session_factory, sweep_id, [report(1, 0)])
    with session_scope(session_factory) as session:
        assert fail_runs(session, sweep_id, 1, [0, 1, 2], "RuntimeError: boom") == 2
    with session_scope(session_factory) as session:
        outcomes = dict(session.execute(select(Run.seed, Run.outcome).where(Run.sweep_id == sweep_id,
                                                                            Run.cell_index == 1)).all())
        assert outcomes == {0: "unconverged", 1: "failed", 2: "failed"}
        assert outcome_counts(session, [sweep_id])[sweep_id]["failed"] == 2


def test_finish_fails_the_sweep_when_a_run_failed_but_never_for_divergence(
        session_factory: sessionmaker[Session]) -> None:
    ok, bad = make_sweep(session_factory), make_sweep(session_factory)
    store(session_factory, ok, [report(c, s, outcome="diverged", trigger="loss_explosion")
                                for c in range(4) for s in range(3)])
    store(session_factory, bad, [report(c, s) for c in range(4) for s in range(3) if c != 3])
    with session_scope(session_factory) as session:
        fail_runs(session, bad, 3, [0, 1, 2], "RuntimeError: no CUDA")
        assert finish_sweep(session, ok) == "succeeded"
        assert finish_sweep(session, bad) == "failed"
    with session_scope(session_factory) as session:
        assert "3 run(s) failed" in session.get(Sweep, bad).error
        assert "no CUDA" in session.get(Sweep, bad).error
        assert session.get(Sweep, bad).status.is_finished()


def test_sweeps_are_listed_newest_first_with_pages(session_factory: sessionmaker[Session]) -> None:
    ids = [make_sweep(session_factory) for _ in range(3)]
    with session_scope(session_factory) as session:
        page, total = list_sweeps(session, limit=2, offset=0)
        assert [s.id for s in page] == ids[::-1][:2] and total == 3
        page, _ = list_sweeps(session, limit=2, offset=2)
        assert [s.id for s in page] == [ids[0]]


def test_timestamps_come_back_in_utc_on_every_backend(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_factory() as session:
        created = session.get(Sweep, sweep_id).created_at
    assert created.utcoffset() == timedelta(0)
    assert abs((now() - created).total_seconds()) < 60
