"""What the alerts, comparison and webhook endpoints take and answer."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from service.analysis.comparison import CellRuns, Comparison, DivergenceChange, Finding, Side, Thresholds
from service.api.schemas import ApiModel, Num
from service.db.models import Alert, Webhook, WebhookAttempt, WebhookDelivery
from service.spec import INT32_MAX
from service.states import AlertKind, AlertState, DeliveryState, WebhookEvent

MAX_WEBHOOKS_PER_SCHEDULE = 10
DEFAULT_EVENTS = [WebhookEvent.REGRESSION_DETECTED, WebhookEvent.REGRESSION_RESOLVED, WebhookEvent.SWEEP_FAILED,
                  WebhookEvent.FIRE_MISSED]


class ThresholdsIn(BaseModel):
    """When a sweep's difference from its baseline is a regression (each field has its default)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.05, gt=0, lt=1, description="The false discovery rate: a change's q must be under it.")
    min_effect: float = Field(0.10, gt=0, le=1, description="The smallest rise of a divergence rate that counts.")
    min_slowdown: float = Field(1.2, ge=1, le=1000, description="The smallest ratio of median steps to target.")
    tolerance: float = Field(0.05, ge=1e-6, lt=1, description="The stability frontier's divergence tolerance.")
    consecutive: int = Field(1, ge=1, le=30, description="Sweeps in a row a regression must show before it alerts.")

    def thresholds(self) -> Thresholds:
        return Thresholds(**self.model_dump())


class BaselineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep_id: int = Field(ge=0, le=INT32_MAX, description="Compare every sweep of the schedule with this one.")


class BaselinePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep_id: int | None = Field(ge=0, le=INT32_MAX, description=(
        "Pin this sweep as the baseline; null: back to the previous succeeded sweep."))


class AlertOut(ApiModel):
    id: int
    schedule_id: int
    sweep_id: int = Field(description="The sweep that showed it first.")
    baseline_sweep_id: int
    kind: AlertKind
    measure: str = Field(description="What changed: divergence, slowdown, frontier or protection.")
    subject: str = Field(description="The cell's configuration hash, or the arm (frontier).")
    lr: Num | None
    clipping: str
    state: AlertState
    streak: int = Field(description="Sweeps in a row that showed it.")
    evidence: dict[str, Any] = Field(description=(
        "The numbers: counts, rates with Wilson 95% intervals, the test, p and q, the flipped seeds; or the "
        "medians and the ratio's interval; or both frontiers."))
    environment_change: list[str] = Field(description='e.g. "torch 2.13.0 → 2.14.0".')
    text: str
    created_at: datetime
    opened_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by_sweep_id: int | None
    resolution: str | None

    @classmethod
    def build(cls, alert: Alert) -> AlertOut:
        return cls.model_validate(alert, from_attributes=True)


class SideOut(ApiModel):
    diverged: int
    runs: int
    rate: Num | None
    interval: tuple[Num, Num] | None = Field(description="Wilson 95% interval of the rate.")

    @classmethod
    def build(cls, side: Side) -> SideOut:
        return cls(diverged=side.diverged, runs=side.runs, rate=side.rate, interval=side.interval)


class CellChangeOut(ApiModel):
    cell_index: int
    baseline_cell_index: int
    lr: Num
    clipping: str
    test: str = Field(description="mcnemar (the same seeds, paired), boschloo or fisher (different seeds).")
    baseline: SideOut
    current: SideOut
    rate_change: Num
    p_worse: Num = Field(description="One-sided: the current sweep diverges more.")
    q_worse: Num = Field(description="p_worse adjusted for the false discovery rate over the cells (BH).")
    p_better: Num
    q_better: Num
    flipped_seeds: list[int] = Field(description="Seeds that diverge now and did not in the baseline.")
    recovered_seeds: list[int]

    @classmethod
    def build(cls, c: DivergenceChange) -> CellChangeOut:
        return cls(cell_index=c.cell_index, baseline_cell_index=c.baseline_cell_index, lr=c.lr, clipping=c.clipping,
                   test=c.test, baseline=SideOut.build(c.baseline), current=SideOut.build(c.current),
                   rate_change=c.rate_change, p_worse=c.p_worse, q_worse=c.q_worse, p_better=c.p_better,
                   q_better=c.q_better, flipped_seeds=list(c.flipped), recovered_seeds=list(c.recovered))


class SpeedOut(ApiModel):
    cell_index: int
    lr: Num
    clipping: str
    baseline_median: Num
    current_median: Num
    ratio: Num
    ratio_interval: tuple[Num, Num] = Field(description="Bootstrap 95% interval of current ÷ baseline.")


class FrontierOut(ApiModel):
    clipping: str
    baseline_lr: Num | None = Field(description="The highest stable learning rate; null: none.")
    current_lr: Num | None


class FindingOut(ApiModel):
    kind: str
    measure: str
    lr: Num | None
    clipping: str
    text: str
    evidence: dict[str, Any]

    @classmethod
    def build(cls, f: Finding) -> FindingOut:
        return cls(kind=f.kind, measure=f.measure, lr=f.lr, clipping=f.clipping, text=f.text, evidence=f.evidence)


class UnmatchedCellOut(ApiModel):
    cell_index: int
    lr: Num
    clipping: str

    @classmethod
    def build(cls, cell: CellRuns) -> UnmatchedCellOut:
        return cls(cell_index=cell.cell_index, lr=cell.lr, clipping=cell.clipping)


class ComparisonOut(ApiModel):
    sweep_id: int
    baseline_sweep_id: int
    thresholds: ThresholdsIn
    regressions: list[FindingOut]
    improvements: list[FindingOut]
    cells: list[CellChangeOut] = Field(description="Every cell on both sides (matched by configuration hash).")
    speed: list[SpeedOut]
    frontier: list[FrontierOut]
    only_current: list[UnmatchedCellOut] = Field(description="Cells of this sweep the baseline does not have.")
    only_baseline: list[UnmatchedCellOut]
    environment_change: list[str]

    @classmethod
    def build(cls, sweep_id: int, baseline_id: int, thresholds: ThresholdsIn, c: Comparison,
              environment_change: list[str]) -> ComparisonOut:
        return cls(sweep_id=sweep_id, baseline_sweep_id=baseline_id, thresholds=thresholds,
                   regressions=[FindingOut.build(f) for f in c.regressions],
                   improvements=[FindingOut.build(f) for f in c.improvements],
                   cells=[CellChangeOut.build(x) for x in c.divergence],
                   speed=[SpeedOut(cell_index=s.cell_index, lr=s.lr, clipping=s.clipping,
                                   baseline_median=s.baseline_median, current_median=s.current_median,
                                   ratio=s.ratio, ratio_interval=(s.low, s.high)) for s in c.speed],
                   frontier=[FrontierOut(clipping=f.clipping, baseline_lr=f.baseline_lr, current_lr=f.current_lr)
                             for f in c.frontier],
                   only_current=[UnmatchedCellOut.build(x) for x in c.only_current],
                   only_baseline=[UnmatchedCellOut.build(x) for x in c.only_baseline],
                   environment_change=environment_change)


Url = Annotated[str, Field(min_length=1, max_length=2048, description="http or https, to a public address.")]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url
    events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1, max_length=10)


def redacted(url: str) -> str:
    """A webhook URL with its path and query hidden but for their last 4 characters: a chat
    server's incoming-webhook URL is itself a credential, and GET answers any read token."""
    scheme, _, rest = url.partition("://")
    host, slash, tail = rest.partition("/")
    return f"{scheme}://{host}/…{tail[-4:]}" if slash and len(tail) > 4 else url


class WebhookOut(ApiModel):
    id: int
    schedule_id: int
    url: str = Field(description="Its path and query shown only at creation; after that, their last 4 characters.")
    events: list[WebhookEvent]
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    created_by: str | None

    @classmethod
    def build(cls, hook: Webhook, whole_url: bool = False) -> WebhookOut:
        return cls(id=hook.id, schedule_id=hook.schedule_id, url=hook.url if whole_url else redacted(hook.url),
                   events=[WebhookEvent(e) for e in hook.events], enabled=hook.enabled,
                   disabled_reason=hook.disabled_reason, created_at=hook.created_at, created_by=hook.created_by)


class WebhookCreated(WebhookOut):
    secret: str = Field(description=(
        "The signing secret (whsec_ + base64), shown this once: keep it where the receiver verifies signatures."))


class AttemptOut(ApiModel):
    attempted_at: datetime
    status: int | None = Field(description="The receiver's HTTP status; null: no answer (see error).")
    latency_ms: float
    error: str | None


class DeliveryOut(ApiModel):
    id: int
    msg_id: str = Field(description="The webhook-id header: the same on every attempt.")
    event: WebhookEvent
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    body: dict[str, Any] = Field(description="What was (or will be) sent.")
    attempt_log: list[AttemptOut]

    @classmethod
    def build(cls, d: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(id=d.id, msg_id=d.msg_id, event=WebhookEvent(d.event), state=d.state, attempts=d.attempts,
                   next_attempt_at=d.next_attempt_at, last_status=d.last_status, last_error=d.last_error,
                   created_at=d.created_at, delivered_at=d.delivered_at, body=json.loads(d.body),
                   attempt_log=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts])
