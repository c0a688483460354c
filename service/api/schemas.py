"""Response models of the HTTP API, kept apart from the database models.

Non-finite numbers are part of the data here (a diverged run's last loss is often NaN or
infinite), so they are serialized as the strings "NaN", "Infinity" and "-Infinity", never dropped.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from service.db.models import Sweep, SweepComparison
from service.db.rows import RunRow
from service.queries.runs import RunDetail
from service.queries.sweeps import sweep_step_progress
from service.states import RunOutcome, SweepStatus

T = TypeVar("T")

# A measured number: a float, or one of the strings a non-finite one is written as. The document
# says so (for answers only: nothing sent to the API is non-finite).
Num = Annotated[float, WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]},
    mode="serialization")]


class ErrorOut(BaseModel):
    """Every error but a 422 (whose `detail` lists what was wrong where) says what to do in `detail`."""

    detail: str


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
    steps_total: int = Field(description="Every run's budget of steps, in all.")
    steps_done: int = Field(description=(
        "Steps trained so far: a finished run counts its whole budget, a run still training the steps "
        "its worker last wrote (every few seconds). It moves while runs that end at their budget train."))
    steps_per_second: float | None = Field(description="Steps done over the time since the sweep started, "
                                                       "while it runs.")
    eta_seconds: float | None = Field(description="Seconds left at that pace, while it runs.")


class SweepCreated(ApiModel):
    id: int
    name: str
    status: SweepStatus
    runs_total: int
    url: str = Field(description="The sweep's dashboard page.")


class NodeOut(ApiModel):
    node: str | None = Field(description="The host and Ray node id.")
    device: str | None
    runs: int


class ComparisonSummaryOut(ApiModel):
    """A finished sweep against its baseline, as the notifier found it (the full tables:
    GET /api/v1/sweeps/{sweep_id}/compare/{baseline_sweep_id})."""

    baseline_sweep_id: int | None
    detail: str | None = Field(description="Why nothing was compared (the first sweep, a failed one).")
    regressions: list[dict[str, Any]]
    improvements: list[dict[str, Any]]
    environment_change: list[str]
    alerts_raised: list[int]
    alerts_resolved: list[int]

    @classmethod
    def build(cls, row: SweepComparison) -> ComparisonSummaryOut:
        result = row.result or {}
        return cls(baseline_sweep_id=row.baseline_sweep_id, detail=row.detail,
                   regressions=result.get("regressions", []), improvements=result.get("improvements", []),
                   environment_change=result.get("environment_change", []),
                   alerts_raised=result.get("alerts_raised", []), alerts_resolved=result.get("alerts_resolved", []))


class SweepOut(ApiModel):
    id: int
    name: str
    task: str
    status: SweepStatus
    finished: bool = Field(description="The sweep has ended (succeeded, failed or cancelled): nothing will "
                                       "train it again.")
    error: str | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status_detail: str | None = Field(description=(
        "Why a queued sweep waits: for resources, or behind another sweep (\"queued behind sweep 12, "
        "about 40 min left\", the time estimated from that sweep's pace so far)."))
    cancel_requested_at: datetime | None
    claims: int = Field(description="How many times a worker claimed it; above 1 after a worker was lost.")
    progress: Progress
    environment: dict[str, str | None] | None = Field(description=(
        "What its worker trained with: clipsweep, python, torch, cuda, ray, task_plugin (name==version)."))
    nodes: list[NodeOut] | None = Field(None, description=(
        "The nodes and devices its runs trained on, with how many runs each (GET /sweeps/{id} only)."))
    schedule_id: int | None = Field(None, description="The schedule that made it, if one did.")
    scheduled_for: datetime | None = None
    comparison: ComparisonSummaryOut | None = Field(None, description=(
        "A finished scheduled sweep against its baseline, once compared (GET /sweeps/{id} only)."))

    @classmethod
    def build(cls, sweep: Sweep, counts: dict[str, int], wait: str | None = None,
              nodes: list[NodeOut] | None = None, comparison: SweepComparison | None = None) -> SweepOut:
        """`wait`: why a queued sweep waits, when it stored no reason itself (queries.sweeps.queue_waits)."""
        return cls(
            id=sweep.id, name=sweep.name, task=sweep.task, status=sweep.status,
            finished=sweep.status.is_finished(), error=sweep.error,
            spec=sweep.spec, created_at=sweep.created_at, started_at=sweep.started_at,
            finished_at=sweep.finished_at, status_detail=sweep.status_detail or wait,
            cancel_requested_at=sweep.cancel_requested_at, claims=sweep.claims,
            progress=Progress(runs_total=sweep.runs_total, done=sum(counts.values()), by_outcome=counts,
                              **asdict(sweep_step_progress(sweep, sum(counts.values())))),
            environment=sweep.environment, nodes=nodes, schedule_id=sweep.schedule_id,
            scheduled_for=sweep.scheduled_for,
            comparison=ComparisonSummaryOut.build(comparison) if comparison is not None else None,
        )


class RunOut(ApiModel):
    id: int
    seed: int
    cell_index: int
    lr: float
    clipping: str
    outcome: RunOutcome | None
    trigger: str | None
    diverged_at_step: int | None
    converged_at_step: int | None
    steps_done: int | None
    final_loss: Num | None
    min_loss: Num | None
    clipped_steps: int | None
    max_grad_norm: Num | None
    divergence_grad_norm: Num | None = Field(description="A diverged run's last pre-clip norm.")
    device: str | None
    node: str | None
    error: str | None
    attempts: int = Field(description="Trainings started; above 1 only after lost infrastructure.")

    @classmethod
    def build(cls, run: RunRow) -> RunOut:
        return cls(**{name: getattr(run, name) for name in cls.model_fields})


class RunDetailOut(RunOut):
    sweep_id: int
    sweep_name: str
    initial_loss: Num | None
    final_eval_loss: Num | None
    config: dict[str, Any] = Field(description="The trainer config it ran with; with `seed`, it reproduces the run.")
    reproduce: str = Field(description="Python that trains this run again with torch and trainers/ alone.")

    @classmethod
    def build_detail(cls, detail: RunDetail) -> RunDetailOut:
        run, config = detail.run, detail.config
        # The config as JSON in a raw string: it may hold Infinity, which Python has no literal for.
        code = ("import json\nfrom trainers import TrainConfig, run_seed\n\n"
                f"config = TrainConfig.from_dict(json.loads(r\"\"\"\n{json.dumps(config, indent=2)}\n\"\"\"))\n"
                f"result = run_seed(config, seed={run.seed})\n"
                "print(result.outcome, result.diverged_at_step, result.converged_at_step)")
        return cls(**RunOut.build(run).model_dump(), sweep_id=run.sweep_id, sweep_name=detail.sweep_name,
                   initial_loss=run.initial_loss, final_eval_loss=run.final_eval_loss, config=config,
                   reproduce=code)


class SeriesOut(ApiModel):
    """One run's stored points, column by column (every `record_every`-th step and the last)."""

    run_id: int
    steps: list[int]
    loss: list[Num]
    grad_norm: list[Num | None] = Field(description="Pre-clip norm; null where the loss diverged before "
                                                      "backward computed one.")
    clipped: list[bool]


class CellRunSeriesOut(SeriesOut):
    seed: int
    outcome: RunOutcome | None
    trigger: str | None
    diverged_at_step: int | None
    converged_at_step: int | None


class CellSeriesOut(ApiModel):
    cell_index: int
    lr: float
    clipping: str
    clip_method: str
    clip_params: dict[str, Any]
    runs: list[CellRunSeriesOut] = Field(description="The page's runs, by seed.")
    total: int = Field(description="The cell's runs in all.")
    limit: int
    offset: int
