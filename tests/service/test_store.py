"""The sweep store on SQLite and PostgreSQL: creation, idempotent results, faithful non-finite
values, the claim protocol and the summary."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.api.schemas import RunOut
from service.db.models import Run, RunPoint, Sweep
from service.db.session import session_scope
from service.queue import claim_next_sweep, finish_sweep, heartbeat, release_sweep
from service.results import ReportedRun, fail_runs, now, pending_runs, store_results
from service.spec import SpecError, parse_spec
from service.statistics import PairedComparison, Unavailable
from service.sweeps import create_sweep, list_sweeps, outcome_counts, stability_frontier, summarize_cells

SPEC: dict[str, Any] = {
    "name": "store-test",
    "task": {"name": "adding", "params": {"seq_len": 20}},
    "learning_rates": [0.1, 0.5],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 3,
    "budget": {"max_steps": 10},
}


def make_sweep(factory: sessionmaker[Session], spec: dict[str, Any] = SPEC) -> int:
    with session_scope(factory) as session:
        return create_sweep(session, parse_spec(spec), max_runs=1000).id


def result(cell: int, seed: int, outcome: str = "unconverged", **fields: Any) -> ReportedRun:
    run = {"outcome": outcome, "steps_done": 10, "trigger": None, "diverged_at_step": None,
           "converged_at_step": None, "initial_loss": 0.3, "final_loss": 0.2, "min_loss": 0.1,
           "final_eval_loss": 0.2, "clipped_steps": 0, "max_grad_norm": 2.0,
           "points": [[0, 0.3, 2.0, False], [9, 0.2, 1.0, True]], **fields}
    return ReportedRun(cell_index=cell, seed=seed, run=run, device="cpu", node="test")


def test_create_stores_the_sweep_and_one_pending_run_per_cell_and_seed(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        sweep = session.get(Sweep, sweep_id)
        assert sweep is not None and sweep.status == "queued" and sweep.runs_total == 12
        assert sweep.spec["clipping"][1] == {"method": "norm", "max_norm": 1.0, "norm_type": 2}
        assert len(pending_runs(session, sweep_id)) == 12
        labels = set(session.scalars(select(Run.clip_label).where(Run.sweep_id == sweep_id)))
        assert labels == {"none", "norm(max_norm=1.0)"}


def test_a_grid_over_the_limit_is_refused_and_stores_nothing(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(SpecError, match="CLIPSWEEP_MAX_RUNS_PER_SWEEP"):
        with session_scope(session_factory) as session:
            create_sweep(session, parse_spec(SPEC), max_runs=11)
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Sweep)) == 0
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_a_result_reported_twice_is_stored_once(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert store_results(session, sweep_id, [result(0, 0), result(0, 1)]) == 2
    with session_scope(session_factory) as session:
        assert store_results(session, sweep_id, [result(0, 0, outcome="diverged")]) == 0
    with session_scope(session_factory) as session:
        run = session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.cell_index == 0,
                                                Run.seed == 0)).one()
        assert run.outcome == "unconverged"  # the first report stands
        assert session.scalar(select(func.count()).select_from(RunPoint).where(RunPoint.run_id == run.id)) == 2
        assert len(pending_runs(session, sweep_id)) == 10


def test_deleting_a_sweep_deletes_its_runs_and_their_points_and_nothing_else(
        session_factory: sessionmaker[Session]) -> None:
    """run_points has no foreign key (migration 0004): a trigger on runs does the cascade, also
    when the runs go by their own cascade from the sweep."""
    kept, deleted = make_sweep(session_factory), make_sweep(session_factory)
    for sweep_id in (kept, deleted):
        with session_scope(session_factory) as session:
            assert store_results(session, sweep_id, [result(0, 0), result(1, 2)]) == 2
    with session_scope(session_factory) as session:
        session.execute(delete(Sweep).where(Sweep.id == deleted))
    with session_scope(session_factory) as session:
        assert set(session.scalars(select(Run.sweep_id).distinct())) == {kept}
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
    nan_loss = result(2, 0, outcome="diverged", trigger="nonfinite_loss", diverged_at_step=4,
                      final_loss=math.nan, points=[[0, 0.3, 2.0, False], [4, math.nan, None, False]])
    inf_norm = result(2, 1, outcome="diverged", trigger="grad_explosion", diverged_at_step=3,
                      max_grad_norm=math.inf, final_loss=math.inf,
                      points=[[3, math.inf, math.inf, False]])
    nan_norm = result(2, 2, outcome="diverged", trigger="nonfinite_grad", diverged_at_step=2,
                      max_grad_norm=math.nan, points=[[2, 5.0, math.nan, False]])
    with session_scope(session_factory) as session:
        store_results(session, sweep_id, [nan_loss, inf_norm, nan_norm])
    with session_scope(session_factory) as session:
        runs = {r.seed: r for r in session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.cell_index == 2))}
        out = {seed: RunOut.build(run) for seed, run in runs.items()}
        assert math.isnan(out[0].final_loss)
        assert out[1].final_loss == math.inf and out[1].max_grad_norm == math.inf
        assert math.isnan(out[2].max_grad_norm)
        assert '"final_loss":"NaN"' in out[0].model_dump_json()
        assert '"max_grad_norm":"Infinity"' in out[1].model_dump_json()
        points = session.execute(select(RunPoint.loss, RunPoint.grad_norm).where(RunPoint.run_id == runs[1].id)).one()
        assert points == (math.inf, math.inf)


def test_a_failed_chunk_marks_only_its_unfinished_runs(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        store_results(session, sweep_id, [result(1, 0)])
        assert fail_runs(session, sweep_id, 1, [0, 1, 2], "RuntimeError: boom") == 2
    with session_scope(session_factory) as session:
        outcomes = dict(session.execute(select(Run.seed, Run.outcome).where(Run.sweep_id == sweep_id, Run.cell_index == 1)).all())
        assert outcomes == {0: "unconverged", 1: "failed", 2: "failed"}
        assert outcome_counts(session, [sweep_id])[sweep_id]["failed"] == 2


def test_only_one_worker_wins_a_claim(session_factory: sessionmaker[Session]) -> None:
    first, second = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "a", heartbeat_timeout=60) == first  # oldest first
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "b", heartbeat_timeout=60) == second
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "c", heartbeat_timeout=60) is None
        assert heartbeat(session, first, "a") and not heartbeat(session, first, "b")


def test_a_sweep_whose_heartbeat_lapsed_is_claimed_again(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "dead", heartbeat_timeout=60) == sweep_id
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(seconds=61)))
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "alive", heartbeat_timeout=60) == sweep_id
        assert not heartbeat(session, sweep_id, "dead")  # the old holder learns it lost the sweep


def test_a_released_sweep_goes_back_to_the_queue(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "a", heartbeat_timeout=60)
        release_sweep(session, sweep_id, "a")
    with session_scope(session_factory) as session:
        assert session.get(Sweep, sweep_id).status == "queued"
        assert claim_next_sweep(session, "b", heartbeat_timeout=60) == sweep_id


def test_finish_fails_the_sweep_when_a_run_failed_but_never_for_divergence(session_factory: sessionmaker[Session]) -> None:
    ok, bad = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        store_results(session, ok, [result(c, s, outcome="diverged", trigger="loss_explosion")
                                    for c in range(4) for s in range(3)])
        store_results(session, bad, [result(c, s) for c in range(4) for s in range(3) if c != 3])
        fail_runs(session, bad, 3, [0, 1, 2], "RuntimeError: no CUDA")
        assert finish_sweep(session, ok).value == "succeeded"
        assert finish_sweep(session, bad).value == "failed"
    with session_scope(session_factory) as session:
        assert "3 run(s) failed" in session.get(Sweep, bad).error
        assert "no CUDA" in session.get(Sweep, bad).error


def test_summary_counts_divergence_per_cell_with_wilson_intervals(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 4})
    reports = [result(2, s, outcome="diverged", trigger="loss_explosion") for s in range(3)]
    reports += [result(2, 3)]
    reports += [result(1, s, outcome="converged", converged_at_step=10 * (s + 1)) for s in range(3)]
    reports += [result(1, 3)]
    with session_scope(session_factory) as session:
        store_results(session, sweep_id, reports)
    with session_scope(session_factory) as session:
        cells = {c.cell_index: c for c in summarize_cells(session, sweep_id)}
    assert (cells[2].lr, cells[2].clipping, cells[2].diverged, cells[2].finished) == (0.5, "none", 3, 4)
    assert cells[2].divergence_rate == 0.75
    assert cells[2].divergence_ci == pytest.approx((0.300642, 0.954413), abs=1e-6)
    assert cells[1].converged == 3 and cells[1].median_steps_to_target == 25.0  # 10,20,30,inf
    assert cells[0].finished == 0 and cells[0].divergence_rate is None


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


def test_a_run_reported_twice_in_one_batch_is_stored_once(session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert store_results(session, sweep_id, [result(0, 0), result(0, 0, outcome="diverged")]) == 1
    with session_factory() as session:
        run = session.scalars(select(Run).where(Run.sweep_id == sweep_id, Run.seed == 0, Run.cell_index == 0)).one()
        assert run.outcome == "unconverged"
        n_points = session.scalar(select(func.count()).select_from(RunPoint).where(RunPoint.run_id == run.id))
        assert n_points == len(result(0, 0).run["points"])


def test_summary_compares_each_arm_with_none_on_the_same_seeds_and_finds_the_frontier(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory, {**SPEC, "seeds": 4})
    # cells: 0 = (0.1, none), 1 = (0.1, norm), 2 = (0.5, none), 3 = (0.5, norm)
    reports = [result(0, s) for s in range(4)]
    reports += [result(1, s, outcome="converged", converged_at_step=10 * (s + 1), steps_done=10 * (s + 1))
                for s in range(4)]
    reports += [result(2, s, outcome="diverged", trigger="loss_explosion") for s in range(3)] + [result(2, 3)]
    reports += [result(3, s) for s in range(3)] + [result(3, 3, outcome="diverged", trigger="loss_explosion")]
    with session_scope(session_factory) as session:
        store_results(session, sweep_id, reports)
    with session_scope(session_factory) as session:
        cells = {c.cell_index: c for c in summarize_cells(session, sweep_id)}
    paired = cells[3].vs_none
    assert isinstance(paired, PairedComparison)
    # seeds 0-2 diverged only without clipping, seed 3 only with it: p = 2·(1 + 4)/16
    assert (paired.pairs, paired.reference_only, paired.arm_only, paired.p_value) == (4, 3, 1, 0.625)
    assert paired.rate_difference == -0.5
    assert cells[2].vs_none is None and cells[0].vs_none is None
    assert cells[1].steps_to_target.value == 25.0
    assert cells[1].median_steps_converged_only == 25.0
    assert cells[1].expected_steps_with_restarts == 25.0  # mean steps 25 ÷ success 4/4
    assert cells[0].expected_steps_with_restarts == math.inf
    assert cells[0].steps_to_target == Unavailable("only 0 of 4 runs reached the target: the median run did not")
    # Wilson upper bounds: 0/4 0.490, 1/4 0.699, 3/4 0.954
    frontier = {f.clipping: f.stable_lr for f in stability_frontier(list(cells.values()), 0.75)}
    assert frontier == {"none": 0.1, "norm(max_norm=1.0)": 0.5}
    strict = {f.clipping: f.stable_lr for f in stability_frontier(list(cells.values()), 0.05)}
    assert strict["none"] == Unavailable("with 4 runs per learning rate even no divergence leaves an upper "
                                         "bound above 5%; it takes at least 73 seeds")
