"""An adaptive sweep through execute_sweep, with the scripted runner of test_execute: seeds are
added round by round where a learning rate's questions are open, paired across its arms, planned
from the database alone (a worker stopped between rounds resumes where it was), up to `max`; and
with a runner that asks for more after every trial, as Tune does, each learning rate at its own
pace while others' trials are in flight."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Callable, Collection, Sequence

from sqlalchemy.orm import Session, sessionmaker

from service.db.session import session_scope
from service.lifecycle.adaptive import add_seeds
from service.lifecycle.queue import claim_next_sweep
from service.lifecycle.runs import Chunk
from service.spec import ResourcesSpec
from service.worker.planning import TrialPlan
from service.worker.runner import TrialSink
from tests.factories import report
from tests.service.worker.test_execute import ScriptedRunner, claimed, execute, state, train

# lr 0.5 unclipped diverges every time, everything else never (test_execute's `train`).
ADAPTIVE = {"min": 16, "max": 256, "batch": 16}
CHUNKS = {"max_seeds_per_trial": 16}


def seeds_by_cell(runs: dict) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for cell, seed in runs:
        out[cell].add(seed)
    return out


def test_seeds_are_added_until_every_question_is_decided(session_factory: sessionmaker[Session]) -> None:
    """0 of n diverged is "stable" at 5% only from 68 seeds on; 16 of 16 is "unstable" at once. A
    cell without divergence after the first 16 gets exactly what it then needs (52 more), so both
    learning rates stop at 68 seeds after two rounds: at 0.1 both arms stable, at 0.5 `none`
    unstable and norm clipping stable (their verdicts differ: the difference is shown)."""
    sweep_id = claimed(session_factory, seeds={"adaptive": ADAPTIVE}, resources=CHUNKS)
    runner = ScriptedRunner()
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and sweep.runs_total == len(runs) == 4 * 68
    assert all(seeds == set(range(68)) for seeds in seeds_by_cell(runs).values())  # paired: the same seeds
    assert len(runner.planned) == 2
    assert {seed for _, seeds in runner.planned[1] for seed in seeds} == set(range(16, 68))  # only the new ones


def test_a_divergence_slows_the_rounds_to_batch(session_factory: sessionmaker[Session]) -> None:
    """Seed 3 diverges in every cell: no cell can jump to the count that no divergence needs, so
    each round adds one batch of 16, as the spec says."""
    def one_diverges(trial: TrialPlan, sink: TrialSink) -> None:
        sink.start_chunk(trial.cell_index, trial.seeds)
        for seed in trial.seeds:
            sink.add(report(trial.cell_index, seed, *(("diverged",) if seed == 3 else ()),
                            **({"trigger": "loss_explosion", "diverged_at_step": 2} if seed == 3 else {})))

    sweep_id = claimed(session_factory, seeds={"adaptive": {"min": 16, "max": 64, "batch": 16}}, resources=CHUNKS)
    runner = ScriptedRunner(*[one_diverges] * 10)
    execute(session_factory, sweep_id, runner)
    assert [sorted({s for _, seeds in r for s in seeds})[0] for r in runner.planned] == [0, 16, 32, 48]


def test_one_divergence_after_the_seeds_a_clean_cell_needs_gets_what_it_then_needs(
        session_factory: sessionmaker[Session]) -> None:
    """Seed 20 diverges in every cell: after 16 clean seeds each jumps to 68, and 1 of 68, the
    divergence taken as bad luck, gets at once the 153 that show it stable if no other diverges,
    instead of six more batches."""
    def seed_20_diverges(trial: TrialPlan, sink: TrialSink) -> None:
        sink.start_chunk(trial.cell_index, trial.seeds)
        for seed in trial.seeds:
            sink.add(report(trial.cell_index, seed, *(("diverged",) if seed == 20 else ()),
                            **({"trigger": "loss_explosion", "diverged_at_step": 2} if seed == 20 else {})))

    sweep_id = claimed(session_factory, seeds={"adaptive": ADAPTIVE}, resources={"max_seeds_per_trial": 128})
    runner = ScriptedRunner(*[seed_20_diverges] * 10)
    execute(session_factory, sweep_id, runner)
    assert [sorted({s for _, seeds in r for s in seeds})[0] for r in runner.planned] == [0, 16, 68]
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and all(seeds == set(range(153)) for seeds in seeds_by_cell(runs).values())


class OneByOne(ScriptedRunner):
    """Trains the trials one at a time and asks for more after each, with the rest still in
    flight, as Tune does when its slots free up one by one; counts what each run was trained."""

    def __init__(self) -> None:
        super().__init__()
        self.trained: Counter[tuple[int, int]] = Counter()
        self.asked_with: list[set[int]] = []  # the cells in flight each time more were planned

    def run_trials(self, next_trials: Callable[[Collection[Chunk]], Sequence[TrialPlan]], *, sink: TrialSink,
                   should_stop: Callable[[], bool], resources: ResourcesSpec, name: str) -> None:
        queue = list(next_trials(()))
        while queue:
            trial = queue.pop(0)
            train(trial, sink)
            self.trained.update((trial.cell_index, seed) for seed in trial.seeds)
            more = next_trials([(t.cell_index, tuple(t.seeds)) for t in queue])
            if more:
                self.planned.append([(t.cell_index, t.seeds) for t in more])
                self.asked_with.append({t.cell_index for t in queue})
            queue += more


def test_each_learning_rate_gets_its_seeds_while_another_still_trains(session_factory: sessionmaker[Session]) -> None:
    """With trials of lr 0.5 still in flight, lr 0.1's runs all back get their next seeds at once;
    no run in flight is planned again, and the sweep ends as it does round by round."""
    sweep_id = claimed(session_factory, seeds={"adaptive": ADAPTIVE}, resources=CHUNKS)
    runner = OneByOne()
    execute(session_factory, sweep_id, runner)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and sweep.runs_total == len(runs) == 4 * 68
    assert set(runner.trained.values()) == {1}  # every run trained once
    assert runner.planned[0] and {cell for cell, _ in runner.planned[0]} == {0, 1}  # lr 0.1's cells
    assert runner.asked_with[0] == {2, 3}  # while lr 0.5's first trials were still in flight


def test_a_learning_rate_stops_at_max_undecided(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory, seeds={"adaptive": {"min": 16, "max": 40, "batch": 16}}, resources=CHUNKS)
    execute(session_factory, sweep_id, ScriptedRunner())
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and all(seeds == set(range(40)) for seeds in seeds_by_cell(runs).values())


def test_a_cell_whose_verdict_is_out_of_reach_stops_short_of_max(session_factory: sessionmaker[Session]) -> None:
    """Every 25th seed diverges in every cell (4%, just under the tolerance): at 80 seeds (16 and
    four batches) 4 have; 3 of 80, one taken as luck, carried on to 512 seeds would still be
    undecided, so each learning rate stops at 80, undecided, instead of training up to 512 for
    nothing."""
    def four_percent(trial: TrialPlan, sink: TrialSink) -> None:
        sink.start_chunk(trial.cell_index, trial.seeds)
        for seed in trial.seeds:
            diverges = seed % 25 == 0
            sink.add(report(trial.cell_index, seed, *(("diverged",) if diverges else ()),
                            **({"trigger": "loss_explosion", "diverged_at_step": 2} if diverges else {})))

    sweep_id = claimed(session_factory, seeds={"adaptive": {"min": 16, "max": 512, "batch": 16}}, resources=CHUNKS)
    execute(session_factory, sweep_id, ScriptedRunner(*[four_percent] * 40))
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and all(seeds == set(range(80)) for seeds in seeds_by_cell(runs).values())


def test_a_worker_stopped_between_rounds_resumes_from_the_database(session_factory: sessionmaker[Session]) -> None:
    stop = threading.Event()

    def stop_in_round_2(trial: TrialPlan, sink: TrialSink) -> None:
        if min(trial.seeds) >= 16:
            stop.set()  # the worker is told to stop before it trains round 2
            return
        train(trial, sink)

    sweep_id = claimed(session_factory, seeds={"adaptive": ADAPTIVE}, resources=CHUNKS)
    execute(session_factory, sweep_id, ScriptedRunner(*[stop_in_round_2] * 3), stop)
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "queued" and sweep.runs_total == 4 * 68  # round 2's seeds are stored, pending
    assert sum(r.outcome is None for r in runs.values()) == 4 * 52
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w1", heartbeat_timeout=60) == sweep_id
        assert add_seeds(session, sweep_id) == 0  # runs still pending: no round is planned on top
    execute(session_factory, sweep_id, ScriptedRunner())
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and sweep.runs_total == len(runs) == 4 * 68


def test_a_fixed_sweep_gets_no_more_seeds(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory)
    execute(session_factory, sweep_id, ScriptedRunner())
    with session_scope(session_factory) as session:
        assert add_seeds(session, sweep_id) == 0
    assert state(session_factory, sweep_id)[0].runs_total == 12
