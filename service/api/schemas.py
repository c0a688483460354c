"""Response models of the HTTP API, kept apart from the database models.

Non-finite numbers are part of the data here (a diverged run's last loss is often NaN or
infinite), so they are serialized as the strings "NaN", "Infinity" and "-Infinity", never dropped.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from service.db.models import Run, Sweep
from service.statistics import Estimate, PairedComparison, Unavailable
from service.sweeps import CellSummary

T = TypeVar("T")


class ApiModel(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings")


class Page(ApiModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Progress(ApiModel):
    runs_total: int
    done: int = Field(description="Runs with a final outcome.")
    by_outcome: dict[str, int]


class SweepCreated(ApiModel):
    id: int
    name: str
    status: str
    runs_total: int
    url: str = Field(description="The sweep's dashboard page.")


class SweepOut(ApiModel):
    id: int
    name: str
    task: str
    status: str
    error: str | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_detail: str | None = Field(description="Why a queued sweep waits, e.g. for resources.")
    cancel_requested_at: datetime | None
    claims: int = Field(description="How many times a worker claimed it; above 1 after a worker was lost.")
    progress: Progress

    @classmethod
    def build(cls, sweep: Sweep, counts: dict[str, int]) -> SweepOut:
        return cls(
            id=sweep.id, name=sweep.name, task=sweep.task, status=sweep.status, error=sweep.error,
            spec=sweep.spec, created_at=sweep.created_at, started_at=sweep.started_at,
            finished_at=sweep.finished_at, status_detail=sweep.status_detail,
            cancel_requested_at=sweep.cancel_requested_at, claims=sweep.claims,
            progress=Progress(runs_total=sweep.runs_total, done=sum(counts.values()), by_outcome=counts),
        )


class StatOut(ApiModel):
    """A statistic: `value` (with `low`/`high`, its 95% interval, where it has one), or `value`
    null and `reason` saying why it cannot be computed yet."""

    value: float | None
    low: float | None = None
    high: float | None = None
    reason: str | None = None

    @classmethod
    def of(cls, stat: Estimate | Unavailable | float) -> StatOut:
        if isinstance(stat, Unavailable):
            return cls(value=None, reason=stat.reason)
        if isinstance(stat, Estimate):
            return cls(value=stat.value, low=stat.low, high=stat.high)
        return cls(value=stat)


class PairedOut(ApiModel):
    """This arm against `none` at the same learning rate, on the seeds both have outcomes for."""

    pairs: int
    none_only_diverged: int = Field(description="Seeds that diverged without clipping but not with this arm.")
    arm_only_diverged: int = Field(description="Seeds that diverged with this arm but not without clipping.")
    none_rate: float
    arm_rate: float
    rate_difference: float = Field(description="arm rate − none rate over the pairs.")
    p_value: float = Field(description="Exact McNemar test on the discordant pairs.")


class CellOut(ApiModel):
    cell_index: int
    lr: float
    clipping: str = Field(description="The arm, e.g. norm(max_norm=1.0).")
    clip_method: str
    runs: int
    finished: int = Field(description="Runs that trained to an outcome (not failed or cancelled).")
    diverged: int
    divergence_rate: float | None = Field(description="diverged / finished; null before any finished.")
    divergence_ci95: tuple[float, float] | None = Field(description="Wilson 95% interval.")
    converged: int
    median_steps_to_target: float | None = Field(
        description="Over all finished runs, unconverged counting as never; null if fewer than half "
                    "converged or the cell is not finished.")
    steps_to_target: StatOut = Field(description="Median steps to target with a seeded bootstrap 95% interval.")
    median_steps_converged_only: StatOut = Field(description="Median over the converged runs only (optimistic).")
    expected_steps_with_restarts: StatOut = Field(
        description="Mean steps per attempt ÷ success probability: the steps to one good model when "
                    "failures are restarted; Infinity when nothing converged.")
    vs_none: PairedOut | StatOut | None = Field(
        description="Paired comparison with the `none` arm at this learning rate; null for `none` itself.")

    @classmethod
    def build(cls, cell: CellSummary) -> CellOut:
        return cls(cell_index=cell.cell_index, lr=cell.lr, clipping=cell.clipping,
                   clip_method=cell.clip_method, runs=cell.runs, finished=cell.finished,
                   diverged=cell.diverged, divergence_rate=cell.divergence_rate,
                   divergence_ci95=cell.divergence_ci, converged=cell.converged,
                   median_steps_to_target=cell.median_steps_to_target,
                   steps_to_target=StatOut.of(cell.steps_to_target),
                   median_steps_converged_only=StatOut.of(cell.median_steps_converged_only),
                   expected_steps_with_restarts=StatOut.of(cell.expected_steps_with_restarts),
                   vs_none=_paired(cell.vs_none))


def _paired(result: PairedComparison | Unavailable | None) -> PairedOut | StatOut | None:
    if result is None or isinstance(result, Unavailable):
        return None if result is None else StatOut.of(result)
    return PairedOut(pairs=result.pairs, none_only_diverged=result.reference_only,
                     arm_only_diverged=result.arm_only, none_rate=result.reference_rate,
                     arm_rate=result.arm_rate, rate_difference=result.rate_difference, p_value=result.p_value)


class FrontierOut(ApiModel):
    clipping: str
    clip_method: str
    stable_lr: StatOut = Field(description="Highest learning rate whose divergence-rate upper bound is under "
                                           "the tolerance.")


class SummaryOut(ApiModel):
    sweep_id: int
    status: str
    tolerance: float = Field(description="Divergence-rate tolerance of the stability frontier.")
    cells: list[CellOut]
    frontier: list[FrontierOut]


class RunOut(ApiModel):
    id: int
    seed: int
    cell_index: int
    lr: float
    clipping: str
    outcome: str | None
    trigger: str | None
    diverged_at_step: int | None
    converged_at_step: int | None
    steps_done: int | None
    final_loss: float | None
    min_loss: float | None
    clipped_steps: int | None
    max_grad_norm: float | None
    device: str | None
    node: str | None
    error: str | None
    attempts: int = Field(description="Trainings started; above 1 only after lost infrastructure.")

    @classmethod
    def build(cls, run: Run) -> RunOut:
        # NaN is stored as NULL; the trigger says where a NULL was a NaN (see service.db.models).
        final_loss = math.nan if run.final_loss is None and run.trigger == "nonfinite_loss" else run.final_loss
        max_norm = math.nan if run.max_grad_norm is None and run.trigger == "nonfinite_grad" else run.max_grad_norm
        return cls(id=run.id, seed=run.seed, cell_index=run.cell_index, lr=run.lr,
                   clipping=run.clip_label, outcome=run.outcome, trigger=run.trigger,
                   diverged_at_step=run.diverged_at_step, converged_at_step=run.converged_at_step,
                   steps_done=run.steps_done, final_loss=final_loss, min_loss=run.min_loss,
                   clipped_steps=run.clipped_steps, max_grad_norm=max_norm, device=run.device,
                   node=run.node, error=run.error, attempts=run.attempts)

