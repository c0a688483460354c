"""The search for each arm's highest stable learning rate: bracketing and bisection on a log grid.

Per arm, the probes decided so far split the grid (service/spec_rates.py): `lo`, the highest point
shown stable, and `hi`, the lowest point above it shown unstable or left undecided (at `max`
seeds, or out of reach of a verdict by then: not shown stable, so never claimed). While a point
lies between them, the middle one is probed next: a new cell of that arm, trained with adaptive
seeds until its verdict is in. The answer is `lo`, backed by its own verdict and the one of the
point just above it.

Bisection is a chain: each probe waits for the one before. So once an open probe's seeds so far
lean one way (under the tolerance: towards stable; over it: towards unstable), the next probe
starts on that bet, one ahead at most and only at a point no arm has yet, with its first seeds:
it asks for more once the probe it was started ahead of is decided, if the bracket still holds
it. A bet lost costs those first seeds; the probe is left behind (`left_behind`): it asks for no
more, and its verdict stays undecided unless another arm's probe later brings seeds to the same
point (paired), which then count like any other. A bet won saves a look's wait per probe.

The state is the stored cells and outcomes alone, so a restarted worker continues the search
where the database says it is. A probe at a learning rate another arm has probed takes the seeds
that arm has there, and the seeds added later go to both: paired, as in a grid.

Divergence usually grows with the learning rate, but not always. A probe below `lo` that is
unstable, or above `hi` that is stable, breaks that order; `breaks` names them so the summary
shows them instead of hiding them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from service.analysis.sequential import Verdict
from service.db.models import Cell, Run, Sweep
from service.grid import cell
from service.lifecycle.adaptive import LearningRateState, learning_rates
from service.spec import SweepSpec
from service.spec_rates import RateSearch
from service.spec_seeds import AdaptiveSeeds, first_seeds
from trainers.clipping import arm_label
from trainers.config import ClippingConfig


@dataclass(frozen=True)
class Probe:
    """One probe of an arm's search: a cell at one grid point, as far as it has trained."""

    lr: float
    cell_index: int
    diverged: int
    trained: int
    verdict: Verdict
    out_of_reach: bool = False  # left undecided short of `max`: at its rate so far, `max` would not decide it
    left_behind: bool = False  # started ahead on a bet the probe before it lost: no longer needed


def _bracket(verdicts: dict[int, Verdict], size: int) -> tuple[int, int]:
    """(lo, hi): the highest index shown stable (-1 for none) and the lowest above it not shown
    stable (`size` for none)."""
    lo = max((i for i, v in verdicts.items() if v is Verdict.STABLE), default=-1)
    return lo, min((i for i, v in verdicts.items() if v is not Verdict.STABLE and i > lo), default=size)


@dataclass(frozen=True)
class ArmSearch:
    """One arm's probes on the grid and where its bracket stands."""

    arm: str
    points: list[float]
    verdicts: dict[int, Verdict]  # grid index -> the probe's verdict (final ones only)
    # Grid index -> the verdict an open probe leans to so far (UNDECIDED before any seed is
    # back), in the order the probes were started.
    leaning: dict[int, Verdict] = field(default_factory=dict)
    probes: tuple[Probe, ...] = ()  # every probe, in the order they were started

    @property
    def lo(self) -> int:
        """The highest grid index shown stable; -1 for none."""
        return _bracket(self.verdicts, len(self.points))[0]

    @property
    def hi(self) -> int:
        """The lowest index above `lo` not shown stable; len(points) for none probed."""
        return _bracket(self.verdicts, len(self.points))[1]

    @property
    def inside(self) -> list[int]:
        """The open probes the bracket still holds, the one being decided first."""
        return [i for i in self.leaning if self.lo < i < self.hi]

    @property
    def open(self) -> bool:
        """A probe is still training or getting seeds."""
        return bool(self.inside)

    @property
    def waiting(self) -> list[int]:
        """Open probes that get no seeds now: one started ahead, until the probe before it is
        decided, and those the bracket no longer holds (left behind)."""
        inside = self.inside
        return inside[1:] + [i for i in self.leaning if i not in inside]

    def next_probe(self) -> int | None:
        """The grid index to probe next, or None: the bracket closed, or waiting for an open probe
        (one that leans neither way yet, or one already started ahead of it)."""
        inside = self.inside
        if len(inside) > 1 or any(self.leaning[i] is Verdict.UNDECIDED for i in inside):
            return None
        lo, hi = _bracket({**self.verdicts, **{i: self.leaning[i] for i in inside}}, len(self.points))
        return (lo + hi) // 2 if hi - lo > 1 else None

    @property
    def breaks(self) -> list[float]:
        """Probed learning rates that break "divergence grows with the learning rate"."""
        return [self.points[i] for i, v in sorted(self.verdicts.items())
                if (i < self.lo and v is Verdict.UNSTABLE) or (i > self.hi and v is Verdict.STABLE)]


def _lean(diverged: int, trained: int, tolerance: float) -> Verdict:
    if not trained:
        return Verdict.UNDECIDED
    return Verdict.STABLE if diverged < tolerance * trained else Verdict.UNSTABLE


def arm_searches(spec: SweepSpec, states: list[LearningRateState]) -> list[ArmSearch]:
    """Each arm's search from the stored state of every learning rate."""
    assert isinstance(spec.learning_rates, RateSearch) and isinstance(spec.seeds, AdaptiveSeeds)
    rule, points = spec.seeds.adaptive, spec.learning_rates.search.points()
    index = {lr: i for i, lr in enumerate(points)}
    out = []
    for arm in (arm_label(ClippingConfig(a.method, a.params)) for a in spec.clipping):
        verdicts, leaning, probes = {}, [], []
        for state in states:
            if arm not in state.cells or state.lr not in index:
                continue
            verdict, wants = state.verdict(arm, rule), state.wants_seeds(arm, rule)
            outcomes = state.diverged[arm]
            diverged, trained = sum(outcomes.values()), len(outcomes)
            short = verdict is Verdict.UNDECIDED and not wants and len(state.seeds) < rule.max
            probes.append(Probe(state.lr, state.cells[arm], diverged, trained, verdict, short))
            # Open while it wants seeds, or while its own runs train with no verdict yet. A verdict
            # already in is used while seeds another arm here wants (paired) train for it too;
            # should they take it back, the point is open again and the search waits for it.
            if wants or (verdict is Verdict.UNDECIDED and state.pending.get(arm)):
                leaning.append((state.cells[arm], index[state.lr], _lean(diverged, trained, rule.tolerance)))
            else:
                verdicts[index[state.lr]] = verdict
        search = ArmSearch(arm, points, verdicts, {i: lean for _, i, lean in sorted(leaning)})
        behind = {points[i] for i in search.leaning if i not in search.inside}
        probes = [replace(p, left_behind=p.lr in behind) for p in sorted(probes, key=lambda p: p.cell_index)]
        out.append(replace(search, probes=tuple(probes)))
    return out


def waiting_probes(session: Session, sweep_id: int) -> set[tuple[float, str]]:
    """(lr, arm) of the open probes that get no more seeds now (ArmSearch.waiting); none for a
    sweep that does not search."""
    spec = SweepSpec.model_validate(session.get_one(Sweep, sweep_id).spec)
    if not isinstance(spec.learning_rates, RateSearch) or not isinstance(spec.seeds, AdaptiveSeeds):
        return set()
    return {(s.points[i], s.arm) for s in arm_searches(spec, learning_rates(session, sweep_id)) for i in s.waiting}


def add_probes(session: Session, sweep_id: int) -> int:
    """Start each arm's next probe (ArmSearch.next_probe): where its last one is decided, or one
    ahead on the bet its seeds so far make; returns the runs added (0 for a sweep that does not
    search). The caller commits."""
    sweep = session.get_one(Sweep, sweep_id)
    spec = SweepSpec.model_validate(sweep.spec)
    if not isinstance(spec.learning_rates, RateSearch) or not isinstance(spec.seeds, AdaptiveSeeds):
        return 0
    states = learning_rates(session, sweep_id)
    by_lr = {state.lr: state for state in states}
    arms = {arm_label(ClippingConfig(a.method, a.params)): a for a in spec.clipping}
    next_index = (session.scalar(select(func.max(Cell.cell_index)).where(Cell.sweep_id == sweep_id)) or 0) + 1
    new_cells, new_runs = [], []
    for search in arm_searches(spec, states):
        probe = search.next_probe()
        if probe is None:
            continue
        lr = search.points[probe]
        if search.inside and lr in by_lr:
            # A probe started ahead waits with its first seeds only; at a point another arm
            # has, it would take all of that arm's seeds (paired). Bisection gets there in turn.
            continue
        seeds = by_lr[lr].seeds if lr in by_lr else first_seeds(spec.seeds)
        made = cell(spec, next_index, lr, arms[search.arm])
        next_index += 1
        new_cells.append(made.row(sweep_id))
        new_runs += [{"sweep_id": sweep_id, "cell_index": made.index, "seed": seed} for seed in seeds]
    if new_cells:
        session.execute(insert(Cell), new_cells)
        session.execute(insert(Run), new_runs)
        session.execute(update(Sweep).where(Sweep.id == sweep_id).values(runs_total=Sweep.runs_total + len(new_runs)))
    return len(new_runs)

