"""The summary's account of a learning-rate search: each arm's probes, its answer, what it cost."""

from __future__ import annotations

from pydantic import Field

from service.analysis.sequential import Verdict
from service.analysis.statistics import min_runs_for_tolerance
from service.api.schemas import ApiModel
from service.lifecycle.search import ArmSearch
from service.spec import SweepSpec
from service.spec_rates import RateSearch
from service.spec_seeds import AdaptiveSeeds


class ProbeOut(ApiModel):
    lr: float
    cell_index: int
    diverged: int
    trained: int
    verdict: Verdict = Field(description=(
        "By the anytime-valid test; undecided while it trains, at `max` seeds, or out of reach."))
    out_of_reach: bool = Field(description=(
        "Left undecided before `max` seeds: diverging at the rate it has so far, it would still be undecided "
        "at `max`, so the seeds up to it were not spent."))
    left_behind: bool = Field(description=(
        "Started ahead of the probe before it, on the bet that probe's first seeds made; it decided the other "
        "way, so this point fell outside the bracket and asked for no seeds beyond its first. Undecided, so it "
        "bounds nothing."))


class ArmSearchOut(ApiModel):
    clipping: str
    highest_stable_lr: float | None = Field(description="The highest grid point shown stable; null for none.")
    next_lr_not_stable: float | None = Field(description=(
        "The grid point above it, probed and shown unstable or left undecided: why the answer is not higher. "
        "Null when the answer is the top of the grid, or while the search runs."))
    searching: bool
    breaks: list[float] = Field(description=(
        "Probed learning rates that break 'divergence grows with the learning rate': unstable below the "
        "answer, or stable above the point that bounds it."))
    probes: list[ProbeOut] = Field(description="In the order they were started.")


class SearchOut(ApiModel):
    tolerance: float = Field(description="The tolerance the search decided its probes at (the spec's).")
    alpha: float = Field(description="Each verdict is wrong with probability at most this, however often it looked.")
    grid: list[float]
    runs: int = Field(description="Runs the search has used so far.")
    grid_runs: int = Field(description=(
        "Runs a grid of the same points would take with the fixed seeds per cell whose Wilson bound can clear "
        "the tolerance (73 at 5%), for every arm."))
    arms: list[ArmSearchOut]

    @classmethod
    def build(cls, spec: SweepSpec, searches: list[ArmSearch], runs: int) -> SearchOut:
        assert isinstance(spec.learning_rates, RateSearch) and isinstance(spec.seeds, AdaptiveSeeds)
        rule, grid = spec.seeds.adaptive, spec.learning_rates.search.points()
        arms = []
        for s in searches:
            done = s.next_probe() is None and not s.open
            arms.append(ArmSearchOut(
                clipping=s.arm, highest_stable_lr=grid[s.lo] if s.lo >= 0 else None,
                next_lr_not_stable=grid[s.hi] if done and s.hi < len(grid) else None, searching=not done,
                breaks=s.breaks, probes=[ProbeOut(lr=p.lr, cell_index=p.cell_index, diverged=p.diverged,
                                                  trained=p.trained, verdict=p.verdict,
                                                  out_of_reach=p.out_of_reach, left_behind=p.left_behind)
                                         for p in s.probes]))
        return cls(tolerance=rule.tolerance, alpha=rule.alpha, grid=grid, runs=runs,
                   grid_runs=len(grid) * len(spec.clipping) * min_runs_for_tolerance(rule.tolerance), arms=arms)
