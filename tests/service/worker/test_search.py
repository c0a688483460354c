"""A search for each arm's highest stable learning rate through execute_sweep, with the scripted
runner of test_execute: probes chosen by bisection from stored verdicts alone, each decided by
adaptive seeds, paired where two arms probe the same rate, far fewer runs than the grid."""

from __future__ import annotations

import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.sequential import Verdict
from service.db.models import Cell, Sweep
from service.db.session import session_scope
from service.lifecycle.adaptive import learning_rates
from service.lifecycle.queue import claim_next_sweep
from service.lifecycle.search import ArmSearch, arm_searches
from service.spec import SweepSpec
from service.worker.planning import TrialPlan
from service.worker.runner import TrialSink
from tests.factories import report
from tests.service.worker.test_execute import Behaviour, ScriptedRunner, claimed, execute, state

# Points 0.001, 0.002, ... 0.512 (ratio 2): unclipped runs diverge above 0.01, clipped above 0.1.
SEARCH = {"search": {"low": 0.001, "high": 1.0, "ratio": 2.0}}
SEEDS = {"adaptive": {"min": 16, "max": 128, "batch": 16}}
EDGE = {"none": 0.01, "norm": 0.1}


def cliff(trial: TrialPlan, sink: TrialSink) -> None:
    sink.start_chunk(trial.cell_index, trial.seeds)
    diverges = trial.train_config["lr"] > EDGE[trial.train_config["clipping"]["method"]]
    for seed in trial.seeds:
        sink.add(report(trial.cell_index, seed, "diverged" if diverges else "unconverged",
                        **({"trigger": "loss_explosion", "diverged_at_step": 3} if diverges else {})))


def near_the_tolerance(trial: TrialPlan, sink: TrialSink) -> None:
    """`cliff`, except that unclipped runs at 0.008 diverge at 4% (every 25th seed)."""
    if trial.train_config["lr"] != 0.008 or trial.train_config["clipping"]["method"] != "none":
        return cliff(trial, sink)
    sink.start_chunk(trial.cell_index, trial.seeds)
    for seed in trial.seeds:
        diverges = seed % 25 == 0
        sink.add(report(trial.cell_index, seed, *(("diverged",) if diverges else ()),
                        **({"trigger": "loss_explosion", "diverged_at_step": 3} if diverges else {})))


def searched(factory: sessionmaker[Session], sweep_id: int) -> dict[str, tuple[float | None, dict[float, Verdict]]]:
    with session_scope(factory) as session:
        spec = SweepSpec.model_validate(session.get_one(Sweep, sweep_id).spec)
        found = arm_searches(spec, learning_rates(session, sweep_id))
    return {s.arm.split("(")[0]: (s.points[s.lo] if s.lo >= 0 else None,
                                  {s.points[i]: v for i, v in s.verdicts.items()}) for s in found}


def unclipped_search(factory: sessionmaker[Session], behave: Behaviour, seeds: dict = SEEDS) -> ArmSearch:
    """A search trained through execute_sweep with `behave`, to its end: the unclipped arm's."""
    sweep_id = claimed(factory, learning_rates=SEARCH, seeds=seeds, resources={"max_seeds_per_trial": 64})
    execute(factory, sweep_id, ScriptedRunner(*[behave] * 40))
    assert state(factory, sweep_id)[0].status == "succeeded"
    with session_scope(factory) as session:
        spec = SweepSpec.model_validate(session.get_one(Sweep, sweep_id).spec)
        return arm_searches(spec, learning_rates(session, sweep_id))[0]


def test_bisection_finds_each_arms_highest_stable_rate(session_factory: sessionmaker[Session]) -> None:
    sweep_id = claimed(session_factory, learning_rates=SEARCH, seeds=SEEDS, resources={"max_seeds_per_trial": 64})
    execute(session_factory, sweep_id, ScriptedRunner(*[cliff] * 40))
    sweep, runs = state(session_factory, sweep_id)
    assert sweep.status == "succeeded" and sweep.runs_total == len(runs)
    found = searched(session_factory, sweep_id)
    assert found["none"][0] == 0.008 and found["norm"][0] == 0.064
    # Each answer is backed by the point above it, probed and not stable.
    assert found["none"][1][0.016] is Verdict.UNSTABLE and found["norm"][1][0.128] is Verdict.UNSTABLE
    assert all(len(verdicts) <= 5 for _, verdicts in found.values())  # log2 of 10 points, not 10
    # The grid of the same 10 points, both arms, with the 73 seeds a fixed cell needs: 1,460 runs.
    # Here 4 probes per arm, stable ones at 68 seeds, unstable ones at 16 unless paired with a stable one.
    assert len(runs) <= 0.4 * 1460, len(runs)
    with session_factory() as session:  # the first probe, 0.016, was shared by both arms: paired
        at_first = session.scalars(select(Cell.clip_label).where(Cell.sweep_id == sweep_id, Cell.lr == 0.016)).all()
    assert len(at_first) == 2


def test_a_probe_out_of_reach_of_a_verdict_bounds_the_answer_without_being_claimed(
        session_factory: sessionmaker[Session]) -> None:
    """Unclipped runs at 0.008 diverge at 4%, just under the tolerance: after 80 seeds (4 diverged)
    even `max` would not decide it, so the probe stops there, undecided, and the answer is the
    point below it, 0.004, shown stable; the search does not spend 512 seeds on that point."""
    none = unclipped_search(session_factory, near_the_tolerance, {"adaptive": {"min": 16, "max": 512, "batch": 16}})
    probe = next(p for p in none.probes if p.lr == 0.008)
    assert (probe.diverged, probe.trained, probe.verdict, probe.out_of_reach) == (4, 80, Verdict.UNDECIDED, True)
    assert none.points[none.lo] == 0.004 and none.points[none.hi] == 0.008 and none.next_probe() is None


def test_a_probe_started_ahead_on_a_lost_bet_is_left_behind_with_its_first_seeds(
        session_factory: sessionmaker[Session]) -> None:
    """Unclipped runs at 0.004 do not diverge in their first 16 seeds but every other one after:
    leaning stable, 0.004 gets a probe started ahead of it at 0.008 (16 seeds, all clean); then
    0.004 is shown unstable, so 0.008 falls outside the bracket. It gets no more seeds, is marked
    left behind and never counts: the answer is 0.002, and 0.008 is no break of the order."""
    def trap(trial: TrialPlan, sink: TrialSink) -> None:
        if trial.train_config["lr"] != 0.004 or trial.train_config["clipping"]["method"] != "none":
            return cliff(trial, sink)
        sink.start_chunk(trial.cell_index, trial.seeds)
        for seed in trial.seeds:
            diverges = seed >= 16 and seed % 2 == 0
            sink.add(report(trial.cell_index, seed, *(("diverged",) if diverges else ()),
                            **({"trigger": "loss_explosion", "diverged_at_step": 3} if diverges else {})))

    none = unclipped_search(session_factory, trap)
    assert none.points[none.lo] == 0.002 and none.points[none.hi] == 0.004 and not none.open
    behind = [p for p in none.probes if p.left_behind]
    assert [(p.lr, p.trained, p.verdict) for p in behind] == [(0.008, 16, Verdict.UNDECIDED)]
    assert none.breaks == [] and none.next_probe() is None


def test_a_restarted_worker_continues_the_search(session_factory: sessionmaker[Session]) -> None:
    stop = threading.Event()
    rounds = 0

    def stop_after_three_rounds(trial: TrialPlan, sink: TrialSink) -> None:
        if rounds >= 3:
            stop.set()
            return
        cliff(trial, sink)

    class Counting(ScriptedRunner):
        def run_round(self, *args: object) -> None:
            nonlocal rounds
            super().run_round(*args)  # type: ignore[arg-type]
            rounds += 1

    sweep_id = claimed(session_factory, learning_rates=SEARCH, seeds=SEEDS, resources={"max_seeds_per_trial": 64})
    execute(session_factory, sweep_id, Counting(*[stop_after_three_rounds] * 40), stop)
    assert state(session_factory, sweep_id)[0].status == "queued"
    with session_scope(session_factory) as session:
        assert claim_next_sweep(session, "w1", heartbeat_timeout=60) == sweep_id
    execute(session_factory, sweep_id, ScriptedRunner(*[cliff] * 40))
    found = searched(session_factory, sweep_id)
    assert state(session_factory, sweep_id)[0].status == "succeeded"
    assert (found["none"][0], found["norm"][0]) == (0.008, 0.064)


def test_points_that_break_the_order_are_named_not_hidden() -> None:
    """Unstable at 0.004 but stable at 0.016 and unstable at 0.032: the answer is 0.016 (shown
    stable, the point above shown not), and 0.004 is reported as breaking the order."""
    points = [0.001 * 2**k for k in range(10)]
    search = ArmSearch("none", points, {2: Verdict.UNSTABLE, 4: Verdict.STABLE, 5: Verdict.UNSTABLE, 8: Verdict.STABLE})
    assert (search.lo, search.hi, search.next_probe()) == (8, 10, 9)
    closed = ArmSearch("none", points, {2: Verdict.UNSTABLE, 4: Verdict.STABLE, 5: Verdict.UNSTABLE})
    assert (closed.lo, closed.hi, closed.next_probe()) == (4, 5, None)
    assert closed.breaks == [0.004]
