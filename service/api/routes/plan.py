"""POST /api/v1/sweeps/plan: what a spec can and cannot show, answered before any training."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from service.analysis.planning import paired_power, seeds_for_power, smallest_rate_ruled_out
from service.analysis.sequential import fewest_for_stable
from service.analysis.statistics import MIN_TOLERANCE, min_runs_for_tolerance
from service.api.auth import READ
from service.api.schemas import ApiModel
from service.spec import SweepSpec, resolve_spec
from service.spec_rates import candidate_rates
from service.spec_seeds import AdaptiveSeeds
from trainers.clipping import arm_label
from trainers.config import ClippingConfig

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"], dependencies=[Depends(READ)])

Rate = Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)]


class PlanCellOut(ApiModel):
    """A cell the spec may train (a search: every point of its grid, for each arm)."""

    lr: float
    clipping: str
    seeds: int = Field(description="Seeds the cell trains (an adaptive spec: the most it may).")
    smallest_rate_ruled_out: float = Field(description=(
        "The lowest divergence rate this cell can rule out: its Wilson 95% upper bound if no seed diverges "
        "(adaptive seeds: the anytime-valid test's, at `max` seeds). Under the tolerance, the cell can be shown "
        "stable; otherwise not, whatever happens."))
    can_show_stable: bool


class DifferenceOut(ApiModel):
    none_rate: float
    arm_rate: float
    power: float = Field(description="The power asked for.")
    seeds_needed: int | None = Field(description=(
        "Paired seeds the two-sided exact McNemar test at 5% needs to find this difference with that power "
        "(arms taken as independent); null when the rates are equal or it takes more than 100,000."))
    power_with_these_seeds: float = Field(description="The power of the spec's own number of seeds.")


class PlanOut(ApiModel):
    tolerance: float
    seeds_for_stable: int = Field(description="The fewest seeds whose upper bound at no divergence is under the "
                                              "tolerance (adaptive seeds: by the anytime-valid test): fewer can "
                                              "never show a cell stable.")
    cells: list[PlanCellOut]
    difference: DifferenceOut | None = Field(description="With none_rate and arm_rate: the power calculation.")


@router.post("/plan", response_model=PlanOut)
def plan_sweep(*, spec: SweepSpec,
               tolerance: Annotated[float, Query(ge=MIN_TOLERANCE, lt=1, allow_inf_nan=False)] = 0.05,
               none_rate: Rate = None, arm_rate: Rate = None,
               power: Annotated[float, Query(gt=0, lt=1, allow_inf_nan=False)] = 0.8) -> PlanOut:
    """Without training or storing anything: for each cell, the lowest divergence rate its seeds can
    rule out at the tolerance; with `none_rate` and `arm_rate`, the paired seeds needed to tell
    `none` from a clipping arm diverging at those rates."""
    spec = resolve_spec(spec)
    seeds = spec.seed_count
    # Adaptive seeds are judged by the anytime-valid test, at the most seeds a cell may get.
    alpha = spec.seeds.adaptive.alpha if isinstance(spec.seeds, AdaptiveSeeds) else None
    bound = smallest_rate_ruled_out(seeds, alpha)
    # Every cell it may train: a search's whole grid, not only its first probe.
    arms = [arm_label(ClippingConfig(arm.method, arm.params)) for arm in spec.clipping]
    out_cells = [PlanCellOut(lr=lr, clipping=arm, seeds=seeds, smallest_rate_ruled_out=bound,
                             can_show_stable=bound < tolerance)
                 for lr in candidate_rates(spec.learning_rates) for arm in arms]
    difference = None
    if none_rate is not None and arm_rate is not None:
        difference = DifferenceOut(none_rate=none_rate, arm_rate=arm_rate, power=power,
                                   seeds_needed=seeds_for_power(none_rate, arm_rate, power),
                                   power_with_these_seeds=paired_power(none_rate, arm_rate, seeds))
    fewest = min_runs_for_tolerance(tolerance) if alpha is None else fewest_for_stable(tolerance, alpha)
    return PlanOut(tolerance=tolerance, seeds_for_stable=fewest, cells=out_cells, difference=difference)
