"""What the schedules API takes and answers."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from service.api.alert_schemas import BaselineIn, BaselinePatch, ThresholdsIn
from service.api.schemas import ApiModel, ComparisonSummaryOut
from service.db.models import Schedule, ScheduleFire, Sweep, SweepComparison
from service.scheduler.cron import MAX_LENGTH, Cron
from service.scheduler.policies import CatchUp, Concurrency, FireOutcome, SeedPolicy
from service.spec import SweepSpec

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: Any) -> Any:
    """A duration as seconds: a number of seconds, or text such as 90s, 30m, 6h, 1d."""
    if isinstance(value, str) and (match := re.fullmatch(r"\s*(\d{1,7})\s*([smhd])\s*", value)):
        return int(match.group(1)) * UNITS[match.group(2)]
    return value


Deadline = Annotated[int, BeforeValidator(_seconds), Field(
    ge=60, le=7 * 86400, description="How late a missed fire time may still be caught up: seconds, or 30m, 6h, 1d.")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
CronText = Annotated[str, Field(max_length=MAX_LENGTH, description=(
    "Five fields (minute hour day-of-month month day-of-week), or @hourly, @daily, @weekly, @monthly, @yearly."))]
Zone = Annotated[str, Field(max_length=64, pattern=r"^[^\x00]*$", description="An IANA time zone.")]


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    cron: CronText
    timezone: Zone = "UTC"
    sweep: SweepSpec = Field(description="The sweep spec, checked exactly as POST /sweeps checks it.")
    concurrency: Concurrency = Concurrency.SKIP
    catch_up: CatchUp = CatchUp.LATEST
    starting_deadline: Deadline = 6 * 3600
    seed_policy: SeedPolicy = SeedPolicy.SAME
    thresholds: ThresholdsIn = Field(default_factory=ThresholdsIn, description=(
        "When a sweep's difference from its baseline is a regression that alerts."))
    baseline: BaselineIn | None = Field(None, description=(
        "Compare every sweep with this one; unset: with the schedule's previous succeeded sweep."))


class SchedulePatch(BaseModel):
    """What PATCH may change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    cron: CronText | None = None
    timezone: Zone | None = None
    concurrency: Concurrency | None = None
    catch_up: CatchUp | None = None
    starting_deadline: Deadline | None = None
    seed_policy: SeedPolicy | None = None
    enabled: bool | None = None
    sweep: SweepSpec | None = Field(None, description="A new spec: a new version of the schedule, the old one kept.")
    thresholds: ThresholdsIn | None = None
    baseline: BaselinePatch | None = Field(None, description='Pin a baseline sweep; {"sweep_id": null} unpins.')


class ScheduleOut(ApiModel):
    id: int
    name: str
    cron: str
    timezone: str
    description: str = Field(description='The cron expression in words, e.g. "At 02:00 every day (Europe/Berlin)".')
    sweep: dict[str, Any] = Field(description="The resolved spec each fire makes a sweep of.")
    concurrency: Concurrency
    catch_up: CatchUp
    starting_deadline: int = Field(description="Seconds.")
    seed_policy: SeedPolicy
    enabled: bool
    next_fire_times: list[datetime] = Field(description="The next five, in UTC; none while paused.")
    sweeps_made: int
    version: int = Field(description="Raised by each change of `sweep`.")
    thresholds: ThresholdsIn
    baseline: BaselineOut | None = Field(description="The pinned baseline; null: the previous succeeded sweep.")
    created_at: datetime
    created_by: str | None

    @classmethod
    def build(cls, schedule: Schedule) -> ScheduleOut:
        cron = Cron(schedule.cron, schedule.timezone)
        upcoming = [schedule.next_fire_at, *cron.fire_times(schedule.next_fire_at, 4)] if schedule.enabled else []
        return cls(id=schedule.id, name=schedule.name, cron=schedule.cron, timezone=schedule.timezone,
                   description=cron.describe(), sweep=schedule.spec, concurrency=schedule.concurrency,
                   catch_up=schedule.catch_up, starting_deadline=schedule.starting_deadline_seconds,
                   seed_policy=schedule.seed_policy, enabled=schedule.enabled, next_fire_times=upcoming,
                   sweeps_made=schedule.sweeps_made, version=schedule.version,
                   thresholds=ThresholdsIn(**(schedule.thresholds or {})),
                   baseline=(BaselineOut(sweep_id=schedule.baseline_sweep_id)
                             if schedule.baseline_sweep_id is not None else None),
                   created_at=schedule.created_at, created_by=schedule.created_by)


class BaselineOut(ApiModel):
    sweep_id: int


class FireOut(ApiModel):
    scheduled_for: datetime = Field(description="The nominal fire time, UTC (the moment itself for a manual one).")
    outcome: FireOutcome
    detail: str | None = Field(description="Why no sweep: skipped, missed or refused.")
    recorded_at: datetime
    sweep_id: int | None
    schedule_version: int | None = Field(description="The version of the schedule's spec at this fire.")
    sweep_status: str | None
    runs_total: int | None
    by_outcome: dict[str, int] | None = Field(description="The sweep's runs by outcome, so far.")
    comparison: ComparisonSummaryOut | None = Field(None, description=(
        "The finished sweep against its baseline; null until it is compared (shortly after it ends)."))

    @classmethod
    def build(cls, fire: ScheduleFire, sweep: Sweep | None, counts: dict[str, int] | None,
              comparison: SweepComparison | None = None) -> FireOut:
        return cls(scheduled_for=fire.scheduled_for, outcome=fire.outcome, detail=fire.detail,
                   recorded_at=fire.recorded_at, sweep_id=fire.sweep_id, schedule_version=fire.schedule_version,
                   sweep_status=sweep.status.value if sweep else None,
                   runs_total=sweep.runs_total if sweep else None, by_outcome=counts,
                   comparison=ComparisonSummaryOut.build(comparison) if comparison else None)
