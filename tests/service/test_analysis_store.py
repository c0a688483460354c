"""Reading a sweep's results back on SQLite and PostgreSQL: clipping telemetry and convergence
curves in the summary, run filters, stored series with their non-finite values, the config that
reproduces a run, and the CSV and Parquet exports."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.export import POINT_COLUMNS, RUN_COLUMNS, stream_csv, stream_parquet
from service.results import fail_runs, store_results
from service.runs import PENDING, BadFilter, RunFilter, cell_runs, get_run, list_runs, reproduce_config, series
from service.statistics import Estimate, Telemetry, Unavailable
from service.sweeps import summarize_cells
from tests.service.test_store import SPEC, make_sweep, result
from trainers import TrainConfig
from trainers.norm_histogram import bin_centre

# cells: 0 = (0.1, none), 1 = (0.1, norm), 2 = (0.5, none), 3 = (0.5, norm); seeds 0-2


def stored(factory: sessionmaker[Session]) -> int:
    """A sweep with hand-made results: cell 2 diverges three ways, cell 1 converges, cell 3 is
    half done and carries norm histograms, cell 0 has runs from before telemetry was recorded."""
    sweep_id = make_sweep(factory)
    reports = [
        result(0, 0), result(0, 1), result(0, 2),
        result(1, 0, outcome="converged", converged_at_step=4, steps_done=4, norm_histogram={0: 4}),
        result(1, 1, outcome="converged", converged_at_step=8, steps_done=8, norm_histogram={0: 8}),
        result(1, 2, norm_histogram={0: 10}),
        result(2, 0, outcome="diverged", trigger="loss_explosion", diverged_at_step=5, steps_done=5,
               divergence_grad_norm=40.0, max_grad_norm=40.0, clipped_steps=0, norm_histogram={20: 3, 32: 2},
               final_loss=1e9, points=[[0, 0.3, 2.0, False], [5, 1e9, None, False]]),
        result(2, 1, outcome="diverged", trigger="nonfinite_grad", diverged_at_step=2, steps_done=2,
               divergence_grad_norm=math.nan, max_grad_norm=math.nan, norm_histogram={20: 2},
               points=[[0, 0.3, 2.0, False], [2, 5.0, math.nan, False]]),
        result(2, 2, outcome="diverged", trigger="nonfinite_loss", diverged_at_step=3, steps_done=3,
               divergence_grad_norm=7.0, max_grad_norm=7.0, final_loss=math.nan, norm_histogram={16: 3},
               points=[[0, 0.3, 2.0, False], [3, math.nan, None, False]]),
        result(3, 0, clipped_steps=6, norm_histogram={0: 4, 20: 6}, max_grad_norm=12.0),
    ]
    with session_scope(factory) as session:
        store_results(session, sweep_id, reports)
    return sweep_id


def test_summary_has_clipping_telemetry_over_every_step(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    with session_scope(session_factory) as session:
        cells = {c.cell_index: c for c in summarize_cells(session, sweep_id)}
    unclipped = cells[2].telemetry
    assert isinstance(unclipped, Telemetry)
    # 10 binned norms and seed 1's NaN one; nearest ranks: p50 -> 6th (bin 20), p90 -> 10th (bin 32)
    assert unclipped.steps == 11 and unclipped.clipped_fraction == 0
    assert (unclipped.norm_p50, unclipped.norm_p90) == (bin_centre(20), bin_centre(32))
    assert unclipped.norm_p99 == bin_centre(32) and unclipped.norm_max == math.inf  # the NaN norm
    assert unclipped.divergence_norm == 40.0 and unclipped.diverged_with_norm == 3  # median of 7, 40, inf
    clipped = cells[3].telemetry  # one of three runs finished: telemetry covers the finished one
    assert isinstance(clipped, Telemetry)
    assert (clipped.steps, clipped.clipped_fraction, clipped.norm_max) == (10, 0.6, 12.0)
    assert clipped.norm_p50 == bin_centre(20) and clipped.norm_p99 == bin_centre(20)  # 11.2 < 12
    assert clipped.divergence_norm == Unavailable("no run diverged after an update")
    assert cells[0].telemetry == Unavailable(
        "no finished run has norm telemetry (runs stored before it was recorded have none)")


def test_summary_has_the_converged_fraction_by_step(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    with session_scope(session_factory) as session:
        cells = {c.cell_index: c for c in summarize_cells(session, sweep_id)}
    assert cells[1].converged_by_step == [(4, 1 / 3), (8, 2 / 3)]
    assert cells[2].converged_by_step == []


def test_runs_filter_by_outcome_lr_arm_and_cell(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    with session_scope(session_factory) as session:
        def seeds(where: RunFilter, limit: int = 100, offset: int = 0) -> tuple[list[tuple[int, int]], int]:
            runs, total = list_runs(session, sweep_id, limit=limit, offset=offset, where=where)
            return [(r.cell_index, r.seed) for r in runs], total

        assert seeds(RunFilter(outcomes=["diverged"])) == ([(2, 0), (2, 1), (2, 2)], 3)
        assert seeds(RunFilter(outcomes=["converged", PENDING])) == ([(1, 0), (1, 1), (3, 1), (3, 2)], 4)
        assert seeds(RunFilter(lr=0.5, clipping="norm(max_norm=1.0)")) == ([(3, 0), (3, 1), (3, 2)], 3)
        assert seeds(RunFilter(lr=0.1, outcomes=["unconverged"]), limit=2, offset=1) == ([(0, 1), (0, 2)], 4)
        assert seeds(RunFilter(cell_index=1)) == ([(1, 0), (1, 1), (1, 2)], 3)
        with pytest.raises(BadFilter, match=r"no learning rate 0.3; it has \[0.1, 0.5\]"):
            list_runs(session, sweep_id, limit=10, offset=0, where=RunFilter(lr=0.3))
        with pytest.raises(BadFilter, match=r"no clipping arm 'norm'; it has \['none', 'norm\(max_norm=1.0\)'\]"):
            list_runs(session, sweep_id, limit=10, offset=0, where=RunFilter(clipping="norm"))
        with pytest.raises(BadFilter, match="no cell 4; its cells are 0 to 3"):
            cell_runs(session, sweep_id, 4)


def test_series_put_nan_back_where_it_was(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    with session_scope(session_factory) as session:
        runs = {r.seed: r.id for r in cell_runs(session, sweep_id, 2)}
        out = series(session, list(runs.values()))
    explosion, nan_grad, nan_loss = (out[runs[s]] for s in range(3))
    assert (explosion.steps, explosion.loss, explosion.grad_norm) == ([0, 5], [0.3, 1e9], [2.0, None])
    assert nan_grad.steps == [0, 2] and math.isnan(nan_grad.grad_norm[1]) and nan_grad.loss == [0.3, 5.0]
    assert math.isnan(nan_loss.loss[1]) and nan_loss.grad_norm == [2.0, None]  # never computed, not NaN
    assert nan_loss.clipped == [False, False]


def test_a_run_carries_the_config_that_reproduces_it(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    with session_scope(session_factory) as session:
        run = cell_runs(session, sweep_id, 3)[0]
        config = TrainConfig.from_dict(reproduce_config(get_run(session, run.id)))
    assert (config.task, config.lr, config.clipping.method) == ("adding", 0.5, "norm")
    assert config.clipping.params["max_norm"] == 1.0 and config.max_steps == SPEC["budget"]["max_steps"]


def read_csv(body: bytes) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_csv_export_of_runs_and_points(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    runs = read_csv(b"".join(stream_csv(session_factory, sweep_id, points=False)))
    assert len(runs) == 12 and list(runs[0]) == list(RUN_COLUMNS)
    by_key = {(int(r["cell_index"]), int(r["seed"])): r for r in runs}
    assert by_key[(2, 1)]["max_grad_norm"] == "nan" and by_key[(2, 2)]["final_loss"] == "nan"
    assert by_key[(2, 0)]["divergence_grad_norm"] == "40.0" and by_key[(3, 2)]["outcome"] == ""
    points = read_csv(b"".join(stream_csv(session_factory, sweep_id, points=True)))
    assert list(points[0]) == list(POINT_COLUMNS)
    assert len(points) == 2 * 10  # two stored points for each of the ten finished runs
    divergence = [p for p in points if p["seed"] == "1" and p["cell_index"] == "2"]
    assert [(p["step"], p["grad_norm"]) for p in divergence] == [("0", "2.0"), ("2", "nan")]
    explosion = [p for p in points if p["seed"] == "0" and p["cell_index"] == "2"]
    assert explosion[-1]["grad_norm"] == "" and explosion[-1]["lr"] == "0.5"


def test_parquet_export_matches_the_csv(session_factory: sessionmaker[Session]) -> None:
    sweep_id = stored(session_factory)
    for points in (False, True):
        table = pq.read_table(pa.BufferReader(b"".join(stream_parquet(session_factory, sweep_id, points=points,
                                                                      chunk=1000))))
        rows = read_csv(b"".join(stream_csv(session_factory, sweep_id, points=points)))
        assert table.schema.names == list(POINT_COLUMNS if points else RUN_COLUMNS)
        assert table.num_rows == len(rows)
        for column in ("seed", "cell_index"):
            assert table.column(column).to_pylist() == [int(r[column]) for r in rows]
    runs = pq.read_table(pa.BufferReader(b"".join(stream_parquet(session_factory, sweep_id, points=False))))
    norms = dict(zip(zip(runs.column("cell_index").to_pylist(), runs.column("seed").to_pylist()),
                     runs.column("max_grad_norm").to_pylist()))
    assert math.isnan(norms[(2, 1)]) and norms[(3, 0)] == 12.0 and norms[(3, 1)] is None


def test_a_cell_with_failed_or_cancelled_runs_is_finished(session_factory: sessionmaker[Session]) -> None:
    """Statistics over the trained runs are final once every run has an outcome, failed ones too."""
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        store_results(session, sweep_id, [
            result(1, 0, outcome="converged", converged_at_step=4, steps_done=4),
            result(1, 1, outcome="converged", converged_at_step=8, steps_done=8)])
        fail_runs(session, sweep_id, 1, [2], "node lost")
    with session_scope(session_factory) as session:
        [cell] = [c for c in summarize_cells(session, sweep_id) if c.cell_index == 1]
    assert (cell.finished, cell.converged) == (2, 2)
    assert cell.median_steps_to_target == 6.0 and cell.median_steps_converged_only == 6.0
    assert isinstance(cell.steps_to_target, Estimate) and cell.steps_to_target.value == 6.0
    assert cell.expected_steps_with_restarts == 6.0
