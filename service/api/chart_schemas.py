"""The models of a cell's chart (GET /api/v1/sweeps/{id}/cells/{cell}/chart): bands over the
seeds, the curves worth drawing, and every run without its points (service/analysis/charts.py)."""

from __future__ import annotations

from pydantic import Field

from service.analysis.charts import Band
from service.api.schemas import ApiModel, Num
from service.states import RunOutcome


class BandOut(ApiModel):
    steps: list[int]
    seeds: list[int] = Field(description="How many seeds have a finite value at each step.")
    p10: list[Num]
    p50: list[Num]
    p90: list[Num]

    @classmethod
    def of(cls, band: Band) -> BandOut:
        return cls(steps=band.steps, seeds=band.seeds, p10=band.quantiles[0.1], p50=band.quantiles[0.5],
                   p90=band.quantiles[0.9])


class ChartRunOut(ApiModel):
    run_id: int
    seed: int
    outcome: RunOutcome | None
    trigger: str | None
    diverged_at_step: int | None
    converged_at_step: int | None


class CurveOut(ChartRunOut):
    steps: list[int]
    loss: list[Num]
    grad_norm: list[Num | None] = Field(description="Pre-clip norm; null where the loss diverged before "
                                                      "backward computed one.")


class CellChartOut(ApiModel):
    cell_index: int
    lr: float
    clipping: str
    clip_method: str
    clip_params: dict[str, object]
    width: int = Field(description="The chart width the curves were thinned for, in points.")
    runs: list[ChartRunOut] = Field(description="Every run of the cell, by seed, without its points.")
    loss: BandOut = Field(description="Loss quantiles over the seeds, step by step.")
    grad_norm: BandOut = Field(description="Pre-clip norm quantiles over the seeds, step by step.")
    curves: list[CurveOut] = Field(description=(
        "Every diverged seed's curve, then an even sample of the others; each thinned to about two points "
        "per unit of width, its lowest and highest value per bucket of steps, first and last point, peak "
        "and non-finite values kept."))
    others: int = Field(description="Runs with an outcome other than diverged, of which `curves` holds a sample.")
