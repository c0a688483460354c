"""POST /api/v1/sweeps/plan: what a spec can and cannot show, answered before any training."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from service.analysis.planning import paired_power, seeds_for_power
from service.analysis.statistics import MIN_TOLERANCE, min_runs_for_tolerance, wilson_interval
from service.api.auth import READ
from service.api.schemas import ApiModel
from service.grid import cells
from service.spec import SweepSpec, resolve_spec

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"], dependencies=[Depends(READ)])

Rate = Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)]


class PlanCellOut(ApiModel):
    lr: float
    clipping: str
    seeds: int = Field(description="Seeds the cell trains (an adaptive spec: the most it may).")
    smallest_rate_ruled_out: float = Field(description=(
        "The lowest divergence rate this cell can rule out: its Wilson 95% upper bound if no seed diverges. "
        "Under the tolerance, the cell can be shown stable; otherwise not, whatever happens."))
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
                                              "tolerance: fewer can never show a cell stable.")
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
    bound = wilson_interval(0, seeds)[1]
    out_cells = [PlanCellOut(lr=c.lr, clipping=c.label, seeds=seeds, smallest_rate_ruled_out=bound,
                             can_show_stable=bound < tolerance) for c in cells(spec)]
    difference = None
    if none_rate is not None and arm_rate is not None:
        difference = DifferenceOut(none_rate=none_rate, arm_rate=arm_rate, power=power,
                                   seeds_needed=seeds_for_power(none_rate, arm_rate, power),
                                   power_with_these_seeds=paired_power(none_rate, arm_rate, seeds))
    return PlanOut(tolerance=tolerance, seeds_for_stable=min_runs_for_tolerance(tolerance), cells=out_cells,
                   difference=difference)
