"""execute_sweep's control flow without Ray, on SQLite and PostgreSQL: a scripted TrialRunner says
what each trial does (trains, raises, is lost, meets a cancel or a take-over), and the database
must end up exactly as the real worker leaves it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Callable, Collection, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Run, Sweep
from service.db.session import session_scope
from service.errors import ClusterUnavailable
from service.lifecycle.queue import claim_next_sweep, request_cancel
from service.lifecycle.runs import Chunk
from service.settings import Settings
from service.spec import ResourcesSpec
from service.worker.execute import execute_sweep
from service.worker.loop import lease_for
from service.worker.planning import TrialPlan
from service.worker.runner import TrialSink
from tests.factories import SPEC, make_sweep, report

# Poll and write at every chance, so a scripted step is seen by the next one.
SETTINGS = Settings(heartbeat_seconds=1e-6, control_poll_seconds=1e-6, results_flush_seconds=1e-6,
                    max_infra_retries=2, resource_wait_seconds=60)
Behaviour = Callable[[TrialPlan, TrialSink], None]


def train(trial: TrialPlan, sink: TrialSink) -> None:
    """The trial starts and every seed ends: seeds diverge at lr 0.5, the rest run out of budget."""
    sink.start_chunk(trial.cell_index, trial.seeds)
    for seed in trial.seeds:
        if trial.train_config["lr"] == 0.5 and trial.train_config["clipping"]["method"] == "none":
            sink.add(report(trial.cell_index, seed, "diverged", trigger="loss_explosion", diverged_at_step=3))
        else:
            sink.add(report(trial.cell_index, seed))


def lose(cells: set[int], *, reporting_first: bool = False) -> Behaviour:
    """Trials of these cells start (reporting their first seed, if asked), then their Ray actor
    dies; the others train."""
    def behave(trial: TrialPlan, sink: TrialSink) -> None:
        if trial.cell_index not in cells:
            return train(trial, sink)
        sink.start_chunk(trial.cell_index, trial.seeds)
        if reporting_first:
            sink.add(report(trial.cell_index, trial.seeds[0]))
        sink.lose_chunk(trial.cell_index, trial.seeds, "RayActorError: the actor died")
    return behave


class ScriptedRunner:
    """A TrialRunner without Ray: round k runs every trial through `rounds[k]` (then `train`),
    asking `should_stop` before each, as Tune's stopper does; a round is what `next_trials`
    plans once every trial before it has ended (nothing in flight), until it plans none."""

    def __init__(self, *rounds: Behaviour, nodes: list[dict[str, float]] | None = None,
                 fails_with: Exception | None = None) -> None:
        self.rounds = list(rounds)
        self.nodes = [{"CPU": 2.0, "GPU": 0.0}] if nodes is None else nodes
        self.fails_with = fails_with
        self.planned: list[list[tuple[int, list[int]]]] = []

    def node_resources(self) -> list[dict[str, float]]:
        return self.nodes

    def run_trials(self, next_trials: Callable[[Collection[Chunk]], Sequence[TrialPlan]], *, sink: TrialSink,
                   should_stop: Callable[[], bool], resources: ResourcesSpec, name: str) -> None:
        while trials := next_trials(()):
            self.planned.append([(t.cell_index, t.seeds) for t in trials])
            if self.fails_with is not None:
                raise self.fails_with
            self.run_round(trials, sink, should_stop)
            if should_stop():  # Tune's stopper ends the run before more trials are asked for
                return

    def run_round(self, trials: Sequence[TrialPlan], sink: TrialSink, should_stop: Callable[[], bool]) -> None:
        behave = self.rounds.pop(0) if self.rounds else train
        for trial in trials:
            if should_stop():
                return
            behave(trial, sink)
            sink.tick()


def claimed(factory: sessionmaker[Session], **spec: object) -> int:
    sweep_id = make_sweep(factory, {**SPEC, "resources": {"max_seeds_per_trial": 2}, **spec})
    with session_scope(factory) as session:
        assert claim_next_sweep(session, "w1", heartbeat_timeout=60) == sweep_id
    return sweep_id


def execute(factory: sessionmaker[Session], sweep_id: int, runner: ScriptedRunner,
            stop: threading.Event | None = None) -> None:
    execute_sweep(lease_for(factory, SETTINGS, sweep_id, "w1"), runner, SETTINGS, stop or threading.Event())


def state(factory: sessionmaker[Session], sweep_id: int) -> tuple[Sweep, dict[tuple[int, int], Run]]:
    with factory() as session:
        sweep = session.get(Sweep, sweep_id)
        runs = {(r.cell_index, r.seed): r for r in session.scalars(select(Run).where(Run.sweep_id == sweep_id))}
        return sweep, runs


def test_every_run_gets_its_outcome_and_the_sweep_succeeds(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    runner = ScriptedRunner()
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and sweep.error is None and sweep.worker_id == "w1"
    assert {key: r.outcome for key, r in runs.items() if r.outcome == "diverged"} == {
        (2, s): "diverged" for s in range(3)}  # divergence is an outcome, never a failure
    assert all(r.outcome is not None and r.attempts == 1 for r in runs.values())
    # One round, one trial per (cell, chunk of at most 2 seeds), as even as they come.
    assert runner.planned == [[(cell, seeds) for cell in range(4) for seeds in ([0, 1], [2])]]


def test_a_trial_whose_code_raises_fails_its_runs_and_the_sweep_with_the_message(
        session_factory: sessionmaker[Session]) -> None:
    def raises_in_cell_3(trial: TrialPlan, sink: TrialSink) -> None:
        if trial.cell_index != 3:
            return train(trial, sink)
        sink.start_chunk(3, trial.seeds)
        sink.add(report(3, trial.seeds[0]))
        sink.fail_chunk(3, trial.seeds, "RuntimeError: CUDA is not available")

    sweep_id = claimed(session_factory)
    runner = ScriptedRunner(raises_in_cell_3)
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "failed"
    assert sweep.error == "1 run(s) failed; first error: RuntimeError: CUDA is not available"
    assert [runs[(3, s)].outcome for s in range(3)] == ["unconverged", "failed", "unconverged"]
    assert len(runner.planned) == 1  # a code error is not retried


def test_runs_lost_to_infrastructure_are_trained_again_and_only_they(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    runner = ScriptedRunner(lose({1}, reporting_first=True))
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded"
    assert runner.planned[1] == [(1, [1])]  # seeds 0 and 2 had reported before their trials were lost
    assert runs[(1, 1)].attempts == 2 and runs[(1, 0)].attempts == 1 and runs[(0, 0)].attempts == 1


def test_a_run_lost_every_time_fails_after_its_attempts_are_spent(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    runner = ScriptedRunner(lose({1}), lose({1}), lose({1}), lose({1}))
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert len(runner.planned) == 3  # 1 + max_infra_retries rounds trained cell 1
    assert runner.planned[1] == runner.planned[2] == [(1, [0, 1]), (1, [2])]
    assert {(r.outcome, r.attempts) for key, r in runs.items() if key[0] == 1} == {("failed", 3)}
    assert runs[(1, 1)].error == ("lost to infrastructure 3 time(s) (a worker, Ray actor or node died); "
                                  "last: RayActorError: the actor died")
    assert {r.outcome for key, r in runs.items() if key[0] != 1} <= {"unconverged", "diverged"}
    assert sweep.status == "failed" and sweep.error.startswith("3 run(s) failed")


def test_a_cancel_stops_the_trials_and_ends_the_sweep_cancelled(session_factory: sessionmaker[Session]) -> None:
    def cancel_during_cell_1(trial: TrialPlan, sink: TrialSink) -> None:
        train(trial, sink)
        if trial.cell_index == 1:  # after its first trial: the second is never started
            with session_scope(session_factory) as session:
                request_cancel(session, session.get(Sweep, sweep_id), heartbeat_timeout=60)

    sweep_id = claimed(session_factory)
    execute(session_factory, sweep_id, ScriptedRunner(cancel_during_cell_1))
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "cancelled" and sweep.cancel_requested_at is not None
    trained = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)}
    assert {key for key, r in runs.items() if r.outcome == "unconverged"} == trained
    assert {r.outcome for key, r in runs.items() if key not in trained} == {"cancelled"}


def test_a_worker_that_lost_its_claim_stops_and_writes_nothing_of_its_own(
        session_factory: sessionmaker[Session]) -> None:
    def taken_over_after_cell_0(trial: TrialPlan, sink: TrialSink) -> None:
        train(trial, sink)
        if trial.cell_index == 0 and trial.seeds == [2]:
            with session_scope(session_factory) as session:  # w1's heartbeat lapsed; w2 claims the sweep
                session.execute(update(Sweep).values(heartbeat_at=now() - timedelta(minutes=5)))
                assert claim_next_sweep(session, "w2", heartbeat_timeout=60) == sweep_id

    sweep_id = claimed(session_factory)
    runner = ScriptedRunner(taken_over_after_cell_0)
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert (sweep.status, sweep.worker_id, sweep.claims) == ("running", "w2", 2)  # w2's to finish
    assert [runs[(0, s)].outcome for s in range(3)] == ["unconverged"] * 3  # results stored before are kept
    assert all(r.outcome is None and r.attempts == 0 for key, r in runs.items() if key[0] > 0)


def test_a_worker_asked_to_stop_gives_the_sweep_back_with_its_attempts(
        session_factory: sessionmaker[Session]) -> None:
    stop = threading.Event()

    def stop_after_cell_0(trial: TrialPlan, sink: TrialSink) -> None:
        if trial.cell_index == 0:
            return train(trial, sink)
        sink.start_chunk(trial.cell_index, trial.seeds)  # started, then the worker is told to stop
        stop.set()

    sweep_id = claimed(session_factory)
    execute(session_factory, sweep_id, ScriptedRunner(stop_after_cell_0), stop)
    sweep, runs = state(session_factory, sweep_id)
    assert (sweep.status, sweep.worker_id) == ("queued", None)
    assert all(runs[(0, s)].outcome == "unconverged" for s in range(3))
    assert all(r.outcome is None and r.attempts == 0 for key, r in runs.items() if key[0] > 0)


def test_a_sweep_the_cluster_cannot_place_waits_in_the_queue_saying_why(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    runner = ScriptedRunner(nodes=[{"CPU": 0.5, "GPU": 0.0}])  # the spec asks for 1 CPU per trial
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert (sweep.status, sweep.claims) == ("queued", 0)
    assert sweep.status_detail == "waiting for resources: needs 1 CPU per trial, the cluster has 0.5"
    assert sweep.not_before is not None and all(r.attempts == 0 for r in runs.values())
    assert runner.planned == []


def test_a_cluster_that_goes_away_gives_the_sweep_back_and_fails_nothing(
        session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    execute(session_factory, sweep_id, ScriptedRunner(fails_with=ClusterUnavailable("NodeDiedError")))
    sweep, runs = state(session_factory, sweep_id)
    assert (sweep.status, sweep.status_detail) == ("queued", "waiting for Ray: NodeDiedError")
    assert all(r.outcome is None for r in runs.values())


def test_any_other_error_of_the_sweep_fails_it_with_the_message(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    execute(session_factory, sweep_id, ScriptedRunner(fails_with=ValueError("no trainable")))
    sweep, runs = state(session_factory, sweep_id)
    assert (sweep.status, sweep.error) == ("failed", "ValueError: no trainable")
    assert {r.outcome for r in runs.values()} == {"failed"}


def test_a_sweep_cancelled_before_it_ran_trains_nothing(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    with session_scope(session_factory) as session:
        request_cancel(session, session.get(Sweep, sweep_id), heartbeat_timeout=60)
    runner = ScriptedRunner()
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "cancelled" and runner.planned == []
    assert {r.outcome for r in runs.values()} == {"cancelled"}


def test_progress_between_results_is_written_with_them(session_factory: sessionmaker[Session]) -> None:
    """A trial's progress reports reach the sweep's live_steps at the next write; each run that
    finishes takes its steps out of them in the same commit as its outcome; the finished sweep
    keeps none."""
    sweep_id = claimed(session_factory)
    seen: list[int | None] = []
    sink: TrialSink

    def live() -> None:
        time.sleep(0.01)  # past results_flush_seconds, on any clock resolution
        sink.tick()
        with session_factory() as session:
            seen.append(session.scalar(select(Sweep.live_steps).where(Sweep.id == sweep_id)))

    def reporting(trial: TrialPlan, trial_sink: TrialSink) -> None:
        nonlocal sink
        if (trial.cell_index, trial.seeds) != (0, [0, 1]):
            return train(trial, trial_sink)
        sink = trial_sink
        sink.start_chunk(0, [0, 1])
        sink.progress(0, [0, 1], 14)  # both seeds at step 7
        live()
        sink.add(report(0, 0, steps_done=9))  # the first finishes after 9 steps; the other made 7 so far
        live()
        sink.add(report(0, 1, steps_done=10))
        live()

    execute(session_factory, sweep_id, ScriptedRunner(reporting))
    sweep, runs = state(session_factory, sweep_id)
    assert seen == [14, 5, 0]
    assert sweep.status == "succeeded" and sweep.live_steps is None
