"""Stopping `clipsweep serve` mid-sweep loses nothing: the worker gives the sweep back, and the
next start trains only the runs still missing."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from service.db.models import Run, Sweep
from service.db.session import make_engine
from tests.harness import Server

pytestmark = pytest.mark.slow

SPEC = {
    "name": "restart",
    "task": {"name": "adding", "params": {"seq_len": 20, "hidden": 16}},
    "learning_rates": [0.05],
    "clipping": [{"method": "norm", "max_norm": 1.0}],
    "seeds": 12,
    # One seed per trial, so runs finish one by one and the stop falls in the middle.
    "budget": {"max_steps": 500, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 1},
}


def stored_state(data_dir: Path, sweep_id: int) -> tuple[str, dict[int, datetime]]:
    """The sweep's status and, per seed with an outcome, when that outcome was stored."""
    engine = make_engine(f"sqlite:///{data_dir / 'clipsweep.sqlite3'}")
    with engine.connect() as conn:
        rows = conn.execute(select(Run.seed, Run.finished_at).where(
            Run.sweep_id == sweep_id, Run.outcome.is_not(None))).all()
        status = conn.execute(select(Sweep.status).where(Sweep.id == sweep_id)).scalar_one()
    engine.dispose()
    return status, dict(rows)


def test_a_stopped_service_resumes_exactly_the_missing_runs(tmp_path: Path) -> None:
    first = Server(tmp_path)
    try:
        sweep_id = first.http.post("/api/v1/sweeps", json=SPEC).json()["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = first.http.get(f"/api/v1/sweeps/{sweep_id}").json()["progress"]["done"]
            if 2 <= done:
                break
            time.sleep(0.1)
    finally:
        first.stop()
    status, before = stored_state(tmp_path, sweep_id)
    assert status == "queued", first.log()[-3000:]  # given back, not left running
    assert 2 <= len(before) < 12, "stop came too late to test a resume"

    second = Server(tmp_path)
    try:
        sweep = second.wait_finished(sweep_id)
    finally:
        second.stop()
    assert sweep["status"] == "succeeded" and sweep["progress"]["done"] == 12
    _, after = stored_state(tmp_path, sweep_id)
    assert set(after) == set(range(12))
    # Runs finished before the stop were not trained again: their outcomes are the first ones.
    assert all(after[seed] == at for seed, at in before.items())
