"""Reading runs back on SQLite and PostgreSQL: filters, stored series with their non-finite
values, and the stored config that reproduces a run."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.errors import BadFilter, RunNotFound
from service.queries.runs import RunFilter, cell_runs, get_run, list_runs, series
from service.states import RunOutcome
from tests.factories import SPEC, hand_made_sweep
from trainers import TrainConfig


def test_runs_filter_by_outcome_lr_arm_and_cell(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    with session_scope(session_factory) as session:
        def seeds(where: RunFilter, limit: int = 100, offset: int = 0) -> tuple[list[tuple[int, int]], int]:
            runs, total = list_runs(session, sweep_id, limit=limit, offset=offset, where=where)
            return [(r.cell_index, r.seed) for r in runs], total

        assert seeds(RunFilter(outcomes=[RunOutcome.DIVERGED])) == ([(2, 0), (2, 1), (2, 2)], 3)
        assert seeds(RunFilter(outcomes=[RunOutcome.CONVERGED, None])) == ([(1, 0), (1, 1), (3, 1), (3, 2)], 4)
        assert seeds(RunFilter(lr=0.5, clipping="norm(max_norm=1.0)")) == ([(3, 0), (3, 1), (3, 2)], 3)
        assert seeds(RunFilter(lr=0.1, outcomes=[RunOutcome.UNCONVERGED]), limit=2, offset=1) == ([(0, 1), (0, 2)], 4)
        assert seeds(RunFilter(cell_index=1)) == ([(1, 0), (1, 1), (1, 2)], 3)
        with pytest.raises(BadFilter, match=r"no learning rate 0.3; it has \[0.1, 0.5\]"):
            list_runs(session, sweep_id, limit=10, offset=0, where=RunFilter(lr=0.3))
        with pytest.raises(BadFilter, match=r"no clipping arm 'norm'; it has \['none', 'norm\(max_norm=1.0\)'\]"):
            list_runs(session, sweep_id, limit=10, offset=0, where=RunFilter(clipping="norm"))
        with pytest.raises(BadFilter, match="no cell 4; its cells are 0 to 3"):
            cell_runs(session, sweep_id, 4)


def test_series_put_nan_back_where_it_was(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    with session_scope(session_factory) as session:
        cell, runs = cell_runs(session, sweep_id, 2)
        ids = {r.seed: r.id for r in runs}
        out = series(session, list(ids.values()))
    assert (cell.lr, cell.clip_label) == (0.5, "none")
    explosion, nan_grad, nan_loss = (out[ids[s]] for s in range(3))
    assert (explosion.steps, explosion.loss, explosion.grad_norm) == ([0, 5], [0.3, 1e9], [2.0, None])
    assert nan_grad.steps == [0, 2] and math.isnan(nan_grad.grad_norm[1]) and nan_grad.loss == [0.3, 5.0]
    assert math.isnan(nan_loss.loss[1]) and nan_loss.grad_norm == [2.0, None]  # never computed, not NaN
    assert nan_loss.clipped == [False, False]


def test_a_run_carries_the_config_that_reproduces_it(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    with session_scope(session_factory) as session:
        _, runs = cell_runs(session, sweep_id, 3)
        detail = get_run(session, runs[0].id)
        with pytest.raises(RunNotFound, match="no run with id 999999"):
            get_run(session, 999999)
    config = TrainConfig.from_dict(detail.config)
    assert (config.task, config.lr, config.clipping.method) == ("adding", 0.5, "norm")
    assert config.clipping.params["max_norm"] == 1.0 and config.max_steps == SPEC["budget"]["max_steps"]
    assert detail.sweep_name == "store-test" and detail.run.clipping == "norm(max_norm=1.0)"


def test_runs_come_back_with_their_nan_restored(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    with session_scope(session_factory) as session:
        _, runs = cell_runs(session, sweep_id, 2)
    explosion, nan_grad, nan_loss = runs
    assert explosion.final_loss == 1e9 and explosion.max_grad_norm == 40.0
    assert math.isnan(nan_grad.max_grad_norm) and math.isnan(nan_grad.divergence_grad_norm)
    assert math.isnan(nan_loss.final_loss) and nan_loss.max_grad_norm == 7.0
    assert nan_grad.norm_histogram == {20: 2}  # bins come back as ints, as they were reported
