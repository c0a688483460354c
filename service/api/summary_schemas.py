"""The summary's response models: per cell its statistics (each a value with its interval, or the
reason it has none), per arm its stability frontier."""

from __future__ import annotations

from pydantic import Field

from service.analysis.headline import too_early
from service.analysis.sequential import Verdict
from service.analysis.statistics import Estimate, PairedComparison, Telemetry, Unavailable
from service.analysis.summary import CellSummary
from service.api.schemas import ApiModel, Num
from service.api.search_schemas import SearchOut
from service.states import SweepStatus


class StatOut(ApiModel):
    """A statistic: `value` (with `low`/`high`, its 95% interval, where it has one), or `value`
    null and `reason` saying why it cannot be computed yet."""

    value: Num | None
    low: Num | None = None
    high: Num | None = None
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


class TelemetryOut(ApiModel):
    """Over every step of the cell's finished runs that computed a gradient, not only stored points;
    all null with a `reason` when there is none. (One model rather than a union with StatOut: in a
    union FastAPI would write an infinite norm as null instead of "Infinity".)"""

    steps: int | None = Field(description="Steps that computed a gradient.")
    clipped_fraction: float | None
    norm_p50: Num | None = Field(description="Pre-clip norm quantiles, to within 6% (log-binned per run, merged).")
    norm_p90: Num | None
    norm_p99: Num | None
    norm_max: Num | None = Field(description="Exact; Infinity if a norm overflowed or was NaN.")
    divergence_norm: StatOut | None = Field(
        description="Median over diverged runs of the last pre-clip norm before divergence (the update "
                    "that threw the run off the cliff, or the divergence step's own norm).")
    diverged_with_norm: int | None
    reason: str | None = None

    @classmethod
    def of(cls, telemetry: Telemetry | Unavailable) -> TelemetryOut:
        if isinstance(telemetry, Unavailable):
            return cls(steps=None, clipped_fraction=None, norm_p50=None, norm_p90=None, norm_p99=None,
                       norm_max=None, divergence_norm=None, diverged_with_norm=None, reason=telemetry.reason)
        return cls(steps=telemetry.steps, clipped_fraction=telemetry.clipped_fraction,
                   norm_p50=telemetry.norm_p50, norm_p90=telemetry.norm_p90, norm_p99=telemetry.norm_p99,
                   norm_max=telemetry.norm_max, divergence_norm=StatOut.of(telemetry.divergence_norm),
                   diverged_with_norm=telemetry.diverged_with_norm)


class CellOut(ApiModel):
    cell_index: int
    lr: float
    clipping: str = Field(description="The arm, e.g. norm(max_norm=1.0).")
    clip_method: str
    runs: int
    finished: int = Field(description="Runs that trained to an outcome (not failed or cancelled).")
    too_early: bool = Field(description=(
        "The sweep is still training and this cell has fewer than 8 trained runs (and fewer than it will "
        "have): its rate is so far, not an answer; the headline waits for every cell."))
    diverged: int
    divergence_rate: float | None = Field(description="diverged / finished; null before any finished.")
    divergence_ci95: tuple[float, float] | None = Field(description="Wilson 95% interval.")
    converged: int
    median_steps_to_target: float | None = Field(
        description="Over all finished runs, unconverged counting as never; null unless more than half "
                    "converged and the cell is finished.")
    steps_to_target: StatOut = Field(description="Median steps to target with a seeded bootstrap 95% interval.")
    median_steps_converged_only: StatOut = Field(description="Median over the converged runs only (optimistic).")
    expected_steps_with_restarts: StatOut = Field(
        description="Mean steps per attempt ÷ success probability: the steps to one good model when "
                    "failures are restarted; Infinity when nothing converged.")
    vs_none: PairedOut | StatOut | None = Field(
        description="Paired comparison with the `none` arm at this learning rate; null for `none` itself.")
    converged_by_step: list[tuple[int, float]] = Field(
        description="[step, fraction of finished runs converged by then] at each step where a run converged; "
                    "diverged and budget-exhausted runs never converge.")
    telemetry: TelemetryOut = Field(description="Clipping telemetry, or a reason it is missing.")
    verdict: Verdict | None = Field(None, description=(
        "A sweep with adaptive seeds only: stable, unstable or undecided at the summary's tolerance, by the "
        "anytime-valid test its rounds were planned with (valid however often it looked)."))

    out_of_reach: bool | None = Field(None, description=(
        "A finished sweep with adaptive seeds only: true for a cell left undecided before `max` seeds because, "
        "diverging at the rate it had, `max` would not have decided it either (stochastic curtailment)."))
    seeds_to_settle: int | None = Field(None, description=(
        "A finished sweep with a fixed number of seeds: for a cell whose interval still straddles the "
        "tolerance, the seeds in all it would need if its observed rate held; null otherwise."))

    @classmethod
    def build(cls, cell: CellSummary, running: bool = False, verdict: Verdict | None = None,
              seeds_to_settle: int | None = None, out_of_reach: bool | None = None) -> CellOut:
        return cls(cell_index=cell.cell_index, lr=cell.lr, clipping=cell.clipping,
                   clip_method=cell.clip_method, runs=cell.runs, finished=cell.finished,
                   too_early=too_early(cell, running),
                   diverged=cell.diverged, divergence_rate=cell.divergence_rate,
                   divergence_ci95=cell.divergence_ci, converged=cell.converged,
                   median_steps_to_target=cell.median_steps_to_target,
                   steps_to_target=StatOut.of(cell.steps_to_target),
                   median_steps_converged_only=StatOut.of(cell.median_steps_converged_only),
                   expected_steps_with_restarts=StatOut.of(cell.expected_steps_with_restarts),
                   vs_none=_paired(cell.vs_baseline), converged_by_step=cell.converged_by_step,
                   telemetry=TelemetryOut.of(cell.telemetry), verdict=verdict, seeds_to_settle=seeds_to_settle,
                   out_of_reach=out_of_reach)


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
    status: SweepStatus
    tolerance: float = Field(description="Divergence-rate tolerance of the stability frontier.")
    headline: str | None = Field(description="The answer in one sentence; null before any run finished.")
    cells: list[CellOut]
    frontier: list[FrontierOut]
    search: SearchOut | None = Field(None, description="A sweep that searched its learning rates: how, per arm.")
