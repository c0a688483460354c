"""Cancel and waiting for resources: in the database (both kinds), and live through the API and
the CLI on a real service."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Run, Sweep
from service.db.session import session_scope
from service.queue import (
    SweepAlreadyFinished,
    claim_next_sweep,
    finish_sweep,
    heartbeat,
    holds,
    release_sweep,
    request_cancel,
)
from service.results import ReportedRun, now, store_results
from tests.conftest import ROOT, Server
from tests.service.test_store import make_sweep


def cancel(factory: sessionmaker[Session], sweep_id: int) -> str:
    with session_scope(factory) as session:
        return request_cancel(session, session.get(Sweep, sweep_id), heartbeat_timeout=60).value


def outcomes(factory: sessionmaker[Session], sweep_id: int) -> list[str | None]:
    with factory() as session:
        return list(session.scalars(select(Run.outcome).where(Run.sweep_id == sweep_id).order_by(Run.id)))


def test_a_queued_sweep_is_cancelled_at_once_and_a_second_cancel_is_refused(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    assert cancel(session_factory, sweep_id) == "cancelled"
    assert set(outcomes(session_factory, sweep_id)) == {"cancelled"}
    with pytest.raises(SweepAlreadyFinished, match="already ended cancelled"):
        cancel(session_factory, sweep_id)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) is None  # nothing left to run


def test_a_running_sweep_is_flagged_and_its_finished_runs_keep_their_outcomes(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == sweep_id
        run = {"outcome": "diverged", "points": [], "diverged_at_step": 3}
        store_results(session, sweep_id, [ReportedRun(0, 0, run)])
    assert cancel(session_factory, sweep_id) == "running"  # the worker ends it
    with session_factory() as session:
        assert session.get(Sweep, sweep_id).cancel_requested_at is not None
    assert outcomes(session_factory, sweep_id).count("diverged") == 1


def test_a_running_sweep_whose_worker_is_gone_is_cancelled_at_once(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(minutes=5)))
    assert cancel(session_factory, sweep_id) == "cancelled"
    assert set(outcomes(session_factory, sweep_id)) == {"cancelled"}


def test_a_sweep_waiting_for_resources_is_not_claimed_before_its_time(session_factory) -> None:
    first, second = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == first
        release_sweep(session, first, "w", detail="waiting for resources: needs 1 GPU per trial", wait_seconds=60)
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == second  # the queue goes on
        assert session.get(Sweep, first).status_detail == "waiting for resources: needs 1 GPU per trial"
        session.execute(update(Sweep).where(Sweep.id == first).values(not_before=now() - timedelta(seconds=1)))
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w", heartbeat_timeout=60) == first
        assert session.get(Sweep, first).status_detail is None
        assert session.get(Sweep, first).claims == 1  # the look that found no room is not counted


LONG: dict[str, Any] = {
    "name": "to-cancel",
    "task": {"name": "adding", "params": {"seq_len": 20, "hidden": 16}},
    "learning_rates": [0.05],
    "clipping": [{"method": "norm", "max_norm": 1.0}],
    "seeds": 24,
    "budget": {"max_steps": 3000, "batch_size": 16},
    "resources": {"max_seeds_per_trial": 2},
}


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args, "--server", server.url], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())


@pytest.mark.slow
def test_cancel_stops_a_running_sweep_within_seconds(server: Server) -> None:
    sweep_id = server.http.post("/api/v1/sweeps", json=LONG).json()["id"]
    deadline = time.monotonic() + 120
    while server.http.get(f"/api/v1/sweeps/{sweep_id}").json()["progress"]["done"] < 2:
        assert time.monotonic() < deadline, server.log()[-3000:]
        time.sleep(0.2)
    started = time.monotonic()
    done = cli(server, "cancel", str(sweep_id), "--wait", "--poll", "0.2")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout.splitlines()[-1]
    assert took < 30, f"cancel took {took:.0f} s"
    sweep = server.http.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "cancelled" and sweep["cancel_requested_at"]
    by_outcome = sweep["progress"]["by_outcome"]
    assert by_outcome.get("cancelled", 0) > 0 and sum(by_outcome.values()) == 24
    assert by_outcome.get("unconverged", 0) + by_outcome.get("converged", 0) + by_outcome.get("diverged", 0) >= 2

    again = server.http.post(f"/api/v1/sweeps/{sweep_id}/cancel")
    assert again.status_code == 409 and "already ended cancelled" in again.json()["detail"]
    refused = cli(server, "cancel", str(sweep_id))
    assert refused.returncode != 0 and "already ended cancelled" in refused.stderr
    assert server.http.post("/api/v1/sweeps/999999/cancel").status_code == 404


@pytest.mark.slow
def test_a_sweep_the_cluster_cannot_place_says_so_and_the_queue_goes_on(server: Server) -> None:
    gpu = {**LONG, "name": "needs-gpu", "seeds": 2, "resources": {"gpus_per_trial": 0.25, "device": "cuda"}}
    cpu = {**LONG, "name": "after-it", "seeds": 2, "budget": {"max_steps": 50}}
    gpu_id = server.http.post("/api/v1/sweeps", json=gpu).json()["id"]
    cpu_id = server.http.post("/api/v1/sweeps", json=cpu).json()["id"]
    assert server.wait_finished(cpu_id)["status"] == "succeeded"
    sweep = server.http.get(f"/api/v1/sweeps/{gpu_id}").json()
    assert sweep["status"] == "queued"
    assert sweep["status_detail"] == "waiting for resources: needs 0.25 GPU per trial, the cluster has 0"
    shown = cli(server, "status", str(gpu_id))
    assert "waiting for resources: needs 0.25 GPU" in shown.stdout
    assert server.http.post(f"/api/v1/sweeps/{gpu_id}/cancel").json()["status"] == "cancelled"


def test_a_cancel_never_overwrites_a_sweep_that_finished_meanwhile(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "w", heartbeat_timeout=60)
    with session_factory() as session:
        seen = session.get(Sweep, sweep_id)  # the API read it while it was running...
        with session_scope(session_factory) as other:  # ...and the worker finished it meanwhile
            other.execute(update(Run).where(Run.sweep_id == sweep_id).values(outcome="unconverged"))
            finish_sweep(other, sweep_id)
        with pytest.raises(SweepAlreadyFinished, match="already ended succeeded"):
            request_cancel(session, seen, heartbeat_timeout=60)
        session.commit()
    assert set(outcomes(session_factory, sweep_id)) == {"unconverged"}
    with session_factory() as session:
        assert session.get(Sweep, sweep_id).cancel_requested_at is None


def test_a_worker_whose_claim_lapsed_and_was_taken_holds_nothing(session_factory) -> None:
    sweep_id = make_sweep(session_factory)
    with session_scope(session_factory) as session:
        claim_next_sweep(session, "old", heartbeat_timeout=60)
        session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(minutes=5)))
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "new", heartbeat_timeout=60) == sweep_id
    with session_scope(session_factory) as session:
        assert not heartbeat(session, sweep_id, "old") and not holds(session, sweep_id, "old")
        release_sweep(session, sweep_id, "old")  # a stale worker's give-back changes nothing
        assert holds(session, sweep_id, "new")
        assert session.get(Sweep, sweep_id).claims == 2
