"""Adaptive seeds: once a learning rate's runs are back, more seeds if its questions are still open.

Everything is read from stored outcomes and every new seed becomes stored runs, so a worker that
crashes or restarts plans exactly what the last one would have: nothing lives only in memory. The
questions at one learning rate, each decided by an anytime-valid test
(service/analysis/sequential.py), so looking every time costs no validity:

- each arm's cell: is its divergence rate under the tolerance (stable) or over it (unstable)?
- each clipping arm against `none`, where both are unstable: does one diverge less, seed for seed?
  (Where their verdicts differ, the difference is already shown; where both are stable, it does
  not matter for the question of stability.)

A seed added at a learning rate is added to every arm there, so the comparison stays paired. A
cell stops asking for seeds, undecided, when at the rate it has diverged so far even `max` seeds
would not decide it (sequential.out_of_reach): a rate near the tolerance takes far more seeds than
one far from it, and those would be spent for nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Collection

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from service.analysis.sequential import Verdict, fewer_divergences, next_batch, out_of_reach, stability
from service.db.models import Cell, Run, Sweep
from service.spec_seeds import Adaptive, adaptive_rule
from service.states import RunOutcome
from trainers.clipping import BASELINE

_OBSERVED = {RunOutcome.DIVERGED: True, RunOutcome.CONVERGED: False, RunOutcome.UNCONVERGED: False}


@dataclass(frozen=True)
class LearningRateState:
    """One learning rate of an adaptive sweep: its seeds, each arm's outcomes, the verdicts."""

    lr: float
    seeds: list[int]
    cells: dict[str, int]  # arm label -> cell index
    diverged: dict[str, dict[int, bool]]  # arm label -> seed -> diverged (trained runs only)
    pending: dict[str, int]  # arm label -> its runs without an outcome yet

    def verdict(self, arm: str, rule: Adaptive) -> Verdict:
        outcomes = self.diverged[arm]
        return stability(sum(outcomes.values()), len(outcomes), rule.tolerance, rule.alpha)

    def wants_seeds(self, arm: str, rule: Adaptive) -> bool:
        """Whether the arm's cell still wants seeds: undecided, under `max`, and within reach of a
        verdict by then at the rate it has diverged so far."""
        outcomes = self.diverged[arm]
        return (self.verdict(arm, rule) is Verdict.UNDECIDED and len(self.seeds) < rule.max
                and not out_of_reach(sum(outcomes.values()), len(outcomes), rule.tolerance, rule.alpha, rule.max))

    def next_batch(self, rule: Adaptive, held: Collection[str] = ()) -> int:
        """Seeds to add: the most any open cell here wants (sequential.next_batch), leaving out
        the `held` arms' cells; `batch` when only a paired difference is open."""
        wants = [next_batch(sum(outcomes.values()), len(outcomes), rule.tolerance, rule.alpha, rule.batch)
                 for arm, outcomes in self.diverged.items() if arm not in held and self.wants_seeds(arm, rule)]
        return max(wants, default=rule.batch)

    def decided(self, rule: Adaptive, held: Collection[str] = ()) -> bool:
        """Whether every question at this learning rate has its answer, or is out of reach (a cell
        left undecided because `max` seeds would not decide it), or is the question of a `held`
        arm's cell (a search's probe that waits)."""
        if any(self.wants_seeds(arm, rule) for arm in self.cells if arm not in held):
            return False
        verdicts = {arm: self.verdict(arm, rule) for arm in self.cells}
        if BASELINE not in verdicts:
            return True
        for arm, verdict in verdicts.items():
            if arm == BASELINE or not verdict == verdicts[BASELINE] == Verdict.UNSTABLE:
                continue
            base, other = self.diverged[BASELINE], self.diverged[arm]
            both = base.keys() & other.keys()
            only_base = sum(base[s] and not other[s] for s in both)
            only_other = sum(other[s] and not base[s] for s in both)
            if not (fewer_divergences(only_base, only_other, rule.alpha)
                    or fewer_divergences(only_other, only_base, rule.alpha)):
                return False
        return True


def learning_rates(session: Session, sweep_id: int) -> list[LearningRateState]:
    """Each learning rate of the sweep with its seeds and its arms' stored outcomes."""
    rows = session.execute(
        select(Cell.lr, Cell.clip_label, Cell.cell_index, Run.seed, Run.outcome)
        .join(Run, (Run.sweep_id == Cell.sweep_id) & (Run.cell_index == Cell.cell_index))
        .where(Cell.sweep_id == sweep_id)).all()
    seeds: dict[float, set[int]] = defaultdict(set)
    cells: dict[float, dict[str, int]] = defaultdict(dict)
    diverged: dict[float, dict[str, dict[int, bool]]] = defaultdict(lambda: defaultdict(dict))
    pending: dict[float, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for lr, arm, cell_index, seed, outcome in rows:
        seeds[lr].add(seed)
        cells[lr][arm] = cell_index
        if outcome is None:
            pending[lr][arm] += 1
        elif outcome in _OBSERVED:  # failed and cancelled runs say nothing about divergence
            diverged[lr][arm][seed] = _OBSERVED[outcome]
    return [LearningRateState(lr, sorted(seeds[lr]), cells[lr], {arm: dict(diverged[lr][arm]) for arm in cells[lr]},
                              dict(pending[lr])) for lr in sorted(seeds)]


def add_seeds(session: Session, sweep_id: int, held: Collection[tuple[float, str]] = ()) -> int:
    """More seeds (`batch`, or what a cell that looks like it never diverges needs to be shown
    stable; at most up to `max`) in every arm of each learning rate whose questions are still open
    and whose runs all have outcomes; the cells `held` ((lr, arm): a search's probes that wait)
    ask for none. Returns how many runs were added (0: the sweep is done). The caller commits."""
    sweep = session.get_one(Sweep, sweep_id)
    rule = adaptive_rule(sweep.spec)
    if rule is None:
        return 0
    new_runs = []
    for state in learning_rates(session, sweep_id):
        waiting = {arm for lr, arm in held if lr == state.lr}
        if any(state.pending.values()) or len(state.seeds) >= rule.max or state.decided(rule, waiting):
            continue
        start = max(state.seeds) + 1
        more = range(start, start + min(state.next_batch(rule, waiting), rule.max - len(state.seeds)))
        new_runs += [{"sweep_id": sweep_id, "cell_index": cell, "seed": seed}
                     for cell in state.cells.values() for seed in more]
    if new_runs:
        session.execute(insert(Run), new_runs)
        session.execute(update(Sweep).where(Sweep.id == sweep_id)
                        .values(runs_total=Sweep.runs_total + len(new_runs)))
    return len(new_runs)
