"""Schedules over HTTP. So far the preview of a cron expression's fire times, which needs no
schedule: what a user checks before creating one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from service.api.auth import READ
from service.clock import now
from service.errors import InvalidRequest
from service.scheduler.cron import LAST_YEAR, MAX_LENGTH, Cron, CronError

router = APIRouter(prefix="/api/v1", tags=["schedules"], dependencies=[Depends(READ)])


class CronPreviewOut(BaseModel):
    cron: str = Field(description="The expression as five fields (a macro such as @daily spelled out).")
    timezone: str
    description: str = Field(description='In words, e.g. "At 02:00 every day (Europe/Berlin)".')
    fire_times: list[datetime] = Field(description="The next fire times after `after`, in UTC.")


@router.get("/cron/preview", response_model=CronPreviewOut)
def cron_preview(
        cron: Annotated[str, Query(max_length=MAX_LENGTH, description=(
            "Five fields (minute hour day-of-month month day-of-week) or @hourly, @daily, @weekly, "
            "@monthly, @yearly."))],
        timezone: Annotated[str, Query(max_length=64, description="An IANA time zone.")] = "UTC",
        after: Annotated[datetime | None, Query(description=(
            "Start after this moment (ISO 8601; without an offset, UTC). Default: now."))] = None,
        count: Annotated[int, Query(ge=1, le=100)] = 5) -> CronPreviewOut:
    """The next fire times of a cron expression in a time zone, with the daylight saving rules a
    schedule follows (a local time that does not exist fires at the next minute that does, one
    that happens twice fires once)."""
    try:
        parsed = Cron.parse(cron, timezone)
    except CronError as exc:
        raise InvalidRequest([{"loc": [exc.field], "type": "value_error", "msg": str(exc)}], source="query") from None
    start = after or now()
    if not 1970 <= start.year <= LAST_YEAR:
        raise InvalidRequest([{"loc": ["after"], "type": "value_error",
                               "msg": f"give a moment between the years 1970 and {LAST_YEAR}"}], source="query")
    return CronPreviewOut(cron=parsed.expression, timezone=parsed.timezone, description=parsed.describe(),
                          fire_times=parsed.fire_times(start, count))
