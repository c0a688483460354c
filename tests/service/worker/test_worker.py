"""Decisions of the worker: where a trial fits, what counts as lost infrastructure, how lost
trials spend the runs' attempts, and what happens to a crashed driver's sweep (on SQLite and
PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import ray
import ray.exceptions
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Run, Sweep
from service.db.session import session_scope
from service.errors import ClusterUnavailable
from service.lifecycle.queue import claim_next_sweep
from service.lifecycle.runs import count_attempts, fail_exhausted_runs
from service.settings import Settings
from service.spec import ResourcesSpec
from service.worker.buffer import ResultBuffer
from service.worker.loop import Worker, lease_for
from service.worker.runner import waiting_for
from service.worker.tune_runner import Searcher, _PlanningSearcher, _translated_ray_errors, is_infrastructure_error
from tests.factories import make_sweep, report
from trainers.allocator import allocator_environment


def needs(cpus: float, gpus: float) -> ResourcesSpec:
    return ResourcesSpec(cpus_per_trial=cpus, gpus_per_trial=gpus)


def test_a_trial_must_fit_on_one_node_not_on_the_sum_of_them() -> None:
    two_small = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert waiting_for(needs(2, 1), two_small) is None
    assert waiting_for(needs(2, 0.25), two_small) is None
    assert waiting_for(needs(2, 2), two_small) == ("waiting for resources: needs 2 CPU and 2 GPU per trial on "
                                                   "one node, and no node of the cluster has that much")
    assert waiting_for(needs(1, 0.25), [{"CPU": 2.0, "GPU": 0.0}]) == \
        "waiting for resources: needs 0.25 GPU per trial, the cluster has 0"
    assert waiting_for(needs(3, 0), [{"CPU": 2.0, "GPU": 0.0}]) == \
        "waiting for resources: needs 3 CPU per trial, the cluster has 2"
    assert waiting_for(needs(1, 0), []) == "waiting for resources: needs 1 CPU per trial, the cluster has 0"


def test_lost_infrastructure_is_told_apart_from_the_code_raising() -> None:
    assert is_infrastructure_error(ray.exceptions.ActorDiedError())
    assert is_infrastructure_error(ray.exceptions.NodeDiedError("gone"))
    assert is_infrastructure_error(ray.exceptions.RayTaskError("train", "tb", ray.exceptions.ActorDiedError()))
    assert not is_infrastructure_error(ray.exceptions.RayTaskError("train", "tb", ValueError("bad config")))
    assert not is_infrastructure_error(ValueError("bad config"))
    assert not is_infrastructure_error(None)


def test_a_ray_head_that_restarted_under_a_connected_driver_is_not_the_sweeps_fault() -> None:
    """Ray answers a driver whose head restarted at the same address with an AuthenticationError
    (WrongClusterID): the sweep waits for Ray and the process lets go of its connection."""
    wrong_cluster = ray.exceptions.AuthenticationError("RPC error: WrongClusterID: Perhaps the client is "
                                                       "accessing GCS after it has restarted.")
    assert is_infrastructure_error(wrong_cluster)
    with pytest.raises(ClusterUnavailable, match="WrongClusterID"):
        with _translated_ray_errors():
            raise wrong_cluster
    assert not ray.is_initialized()
    with pytest.raises(ValueError):  # the code's own errors pass through untouched
        with _translated_ray_errors():
            raise ValueError("bad config")


def test_training_processes_are_started_with_the_allocator_settings(monkeypatch) -> None:
    env = allocator_environment()
    assert env["MALLOC_MMAP_MAX_"] == "0" and env["MALLOC_ARENA_MAX"] == "1"
    assert Settings().keep_freed_memory
    monkeypatch.setenv("CLIPSWEEP_KEEP_FREED_MEMORY", "0")
    assert not Settings().keep_freed_memory


def attempts(factory: sessionmaker[Session], sweep_id: int) -> dict[tuple[int, int], int]:
    with session_scope(factory) as session:
        rows = session.execute(select(Run.cell_index, Run.seed, Run.attempts).where(Run.sweep_id == sweep_id))
        return {(cell, seed): n for cell, seed, n in rows}


def buffer_of(factory: sessionmaker[Session], sweep_id: int) -> ResultBuffer:
    return ResultBuffer(lease_for(factory, Settings(), sweep_id, "w1"), flush_seconds=0.5)


def test_every_lost_trial_spends_an_attempt_even_one_that_never_started(
        session_factory: sessionmaker[Session]) -> None:
    """A trial whose actor could not be created is lost without Tune ever starting it; if that
    cost nothing, a cluster that never places it would be retried forever."""
    sweep_id = make_sweep(session_factory)
    buffer = buffer_of(session_factory, sweep_id)
    buffer.start_chunk(0, [0, 1])
    buffer.lose_chunk(0, [0, 1], "RayActorError")  # started, then lost: its one attempt stands
    buffer.lose_chunk(1, [0], "RuntimeEnvSetupError")  # never started
    buffer.flush()
    assert attempts(session_factory, sweep_id)[(0, 0)] == 1 and attempts(session_factory, sweep_id)[(1, 0)] == 1
    buffer.lose_chunk(1, [0], "RuntimeEnvSetupError")
    buffer.flush()
    with session_scope(session_factory) as session:  # not while its last attempt is in flight
        assert fail_exhausted_runs(session, sweep_id, max_attempts=2, error="lost twice", in_flight=[(1, (0,))]) == 0
    with session_scope(session_factory) as session:
        assert fail_exhausted_runs(session, sweep_id, max_attempts=2, error="lost twice") == 1
    assert buffer.started == set()


def test_a_clean_stop_gives_back_only_the_attempts_of_trials_still_training(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = make_sweep(session_factory)
    buffer = buffer_of(session_factory, sweep_id)
    buffer.start_chunk(0, [0])
    buffer.lose_chunk(0, [0], "NodeDiedError")
    buffer.start_chunk(0, [0])
    buffer.start_chunk(2, [1])
    buffer.start_chunk(1, [0])
    buffer.add(report(1, 0))  # that trial ended: its run has its outcome
    buffer.start_chunk(3, [0, 1])
    buffer.fail_chunk(3, [0], "ReportError: a malformed report")  # one seed's: the trial goes on
    assert (3, (0, 1)) in buffer.started
    buffer.add(report(3, 1))  # and ends with its other seed
    buffer.flush()
    assert buffer.started == {(0, (0,)), (2, (1,))}
    with session_scope(session_factory) as session:
        count_attempts(session, sweep_id, list(buffer.started), delta=-1)  # what a clean stop does
    counted = attempts(session_factory, sweep_id)
    assert counted[(0, 0)] == 1  # the lost trial's attempt stands
    assert counted[(2, 1)] == 0


def test_a_crashed_driver_gives_its_sweep_back_at_once_and_a_clean_one_leaves_it(
        session_factory: sessionmaker[Session]) -> None:
    """With several sweeps per worker each runs in a driver process; one that dies (here: exit 3)
    must not leave its sweep 'running' until the heartbeat times out."""
    worker = Worker(session_factory, Settings())
    crashed, finished = make_sweep(session_factory), make_sweep(session_factory)
    with session_scope(session_factory) as session:
        for sweep_id in (crashed, finished):
            assert claim_next_sweep(session, worker.id, heartbeat_timeout=60) == sweep_id
    for sweep_id, code in ((crashed, 3), (finished, 0)):
        worker.drivers[sweep_id] = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
        worker.drivers[sweep_id].wait()
    worker._reap_drivers()
    assert worker.drivers == {}
    with session_scope(session_factory) as session:
        back, kept = session.get(Sweep, crashed), session.get(Sweep, finished)
        assert (back.status, back.worker_id, back.heartbeat_at) == ("queued", None, None)
        assert (kept.status, kept.worker_id) == ("running", worker.id)  # a clean driver ended it itself


def test_tunes_searcher_asks_for_more_as_soon_as_a_trial_is_done_and_keeps_a_planning_error() -> None:
    """The Searcher behind TuneRunner.run_trials, driven as Tune's loop drives it: it asks the
    worker for more trials as soon as one trial's seeds have all reported (before Tune ends the
    trial, so that its actor goes to the next one) or it ended without, telling the worker which
    chunks are still in flight; it ends the run only when nothing is planned and nothing is in
    flight."""
    asked: list[list] = []
    planned = [[{"cell_index": 3, "seeds": [0]}], [], []]

    def plan(in_flight: list) -> list:
        asked.append(sorted(in_flight))
        return planned.pop(0)

    searcher = _PlanningSearcher([{"cell_index": 1, "seeds": [0, 1]}, {"cell_index": 2, "seeds": [0]}], plan)
    assert searcher.suggest("a") == {"chunk": {"cell_index": 1, "seeds": [0, 1]}}
    assert searcher.suggest("b") == {"chunk": {"cell_index": 2, "seeds": [0]}}
    assert searcher.suggest("c") is None and asked == []  # both in flight, nothing reported yet
    searcher.on_trial_result("a", {"progress/steps": 10})  # progress is not an outcome
    searcher.on_trial_result("a", {"report/seed": 0, "report/cell_index": 1})
    assert searcher.suggest("c") is None and asked == []
    searcher.on_trial_result("a", {"report/seed": 1, "report/cell_index": 1})  # a's last seed: a is done
    assert searcher.suggest("c") == {"chunk": {"cell_index": 3, "seeds": [0]}}  # without waiting for b
    assert asked == [[(2, (0,))]]
    searcher.on_trial_complete("a")  # Tune ends it after: nothing more to plan for it
    searcher.on_trial_complete("b", error=True)  # an errored trial is done too
    assert searcher.suggest("d") is None and asked[-1] == [(3, (0,))]  # nothing more yet, c trains
    searcher.on_trial_complete("c")
    assert searcher.suggest("d") == Searcher.FINISHED and asked[-1] == [] and searcher.error is None
    assert len(asked) == 3

    def database_down(in_flight: list) -> list:
        raise RuntimeError("the database went away")

    failing = _PlanningSearcher([{"cell_index": 1, "seeds": [0]}], database_down)
    failing.suggest("a")
    failing.on_trial_complete("a")
    assert failing.suggest("b") == Searcher.FINISHED  # ends the run; run_trials raises it after
    assert isinstance(failing.error, RuntimeError)
