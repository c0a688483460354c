"""/api/v1/schedules: sweeps re-run on a cron expression, and the preview of an expression's fire
times that a user checks before creating one. A write token changes the schedules it created; an
admin token any."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from service.api.auth import READ, Writer, require_owner
from service.api.deps import Limit, Offset, ScheduleId, SessionDep, SettingsDep
from service.api.schedule_schemas import FireOut, ScheduleIn, ScheduleOut, SchedulePatch
from service.api.schemas import Page
from service.clock import now
from service.db.models import Schedule, Sweep
from service.errors import Conflict, InvalidRequest, SpecError
from service.lifecycle.schedules import KEEP, Policies, create_schedule, fire, update_schedule
from service.lifecycle.submit import Limits, check_queue_quota
from service.queries.comparisons import stored_comparisons
from service.queries.schedules import get_schedule, list_schedules, schedule_fires
from service.queries.sweeps import outcome_counts
from service.scheduler.cron import LAST_YEAR, MAX_LENGTH, Cron, CronError
from service.scheduler.policies import FireOutcome

router = APIRouter(prefix="/api/v1", tags=["schedules"], dependencies=[Depends(READ)])


def _cron(expression: str, timezone: str, source: str = "body") -> Cron:
    try:
        return Cron.parse(expression, timezone)
    except CronError as exc:
        raise InvalidRequest([{"loc": [exc.field], "type": "value_error", "msg": str(exc)}], source=source) from None


@router.post("/schedules", status_code=status.HTTP_201_CREATED, response_model=ScheduleOut,
             responses={409: {"description": "A schedule of that name exists."},
                        429: {"description": "The token submits too often."}})
def create(*, body: ScheduleIn, session: SessionDep, settings: SettingsDep, request: Request,
           principal: Writer) -> ScheduleOut:
    """Store a schedule; the scheduler makes its first sweep at its first fire time from now."""
    request.app.state.submit_rate.admit(principal.name)  # a schedule counts as a submit
    cron = _cron(body.cron, body.timezone)
    taken = session.scalar(select(Schedule.id).where(Schedule.name == body.name))
    if taken is not None:
        raise Conflict(f"schedule {taken} is already named {body.name!r}; choose another name")
    policies = Policies(body.concurrency, body.catch_up, body.starting_deadline, body.seed_policy)
    try:
        schedule = create_schedule(session, name=body.name, cron=cron, spec=body.sweep, limits=Limits.of(settings),
                                   at=now(), policies=policies, created_by=principal.name,
                                   thresholds=body.thresholds.thresholds(),
                                   baseline_sweep_id=body.baseline.sweep_id if body.baseline else None)
    except SpecError as exc:  # its fields are inside `sweep`
        raise InvalidRequest([{**e, "loc": ["sweep", *e["loc"]]} for e in exc.errors], source="body") from None
    session.commit()
    return ScheduleOut.build(schedule)


@router.get("/schedules", response_model=Page[ScheduleOut])
def list_all(*, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> Page[ScheduleOut]:
    schedules, total = list_schedules(session, limit=limit, offset=offset)
    return Page(items=[ScheduleOut.build(s) for s in schedules], total=total, limit=limit, offset=offset)


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut)
def read(*, schedule_id: ScheduleId, session: SessionDep) -> ScheduleOut:
    return ScheduleOut.build(get_schedule(session, schedule_id))


@router.patch("/schedules/{schedule_id}", response_model=ScheduleOut)
def change(*, schedule_id: ScheduleId, body: SchedulePatch, session: SessionDep, settings: SettingsDep,
           principal: Writer) -> ScheduleOut:
    """Change the cron expression, time zone, policies, or pause (`enabled: false`) and resume. A
    new expression or zone, or a resume, fires next at its first fire time from now. A new
    `sweep` is a new version of the schedule; earlier sweeps keep the version they were made of."""
    schedule = get_schedule(session, schedule_id)
    require_owner(principal, schedule.created_by, f"schedule {schedule_id}", "change")
    cron = (_cron(body.cron or schedule.cron, body.timezone or schedule.timezone)
            if body.cron is not None or body.timezone is not None else None)
    policies = Policies(body.concurrency or schedule.concurrency, body.catch_up or schedule.catch_up,
                        body.starting_deadline or schedule.starting_deadline_seconds,
                        body.seed_policy or schedule.seed_policy)
    try:
        update_schedule(session, schedule, now(), limits=Limits.of(settings), cron=cron, policies=policies,
                        enabled=body.enabled, spec=body.sweep, by=principal.name,
                        thresholds=body.thresholds.thresholds() if body.thresholds else None,
                        baseline_sweep_id=body.baseline.sweep_id if body.baseline else KEEP)
    except SpecError as exc:  # its fields are inside `sweep`
        raise InvalidRequest([{**e, "loc": ["sweep", *e["loc"]]} for e in exc.errors], source="body") from None
    session.commit()
    return ScheduleOut.build(schedule)


@router.delete("/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete(*, schedule_id: ScheduleId, session: SessionDep, principal: Writer) -> Response:
    """Stop and remove the schedule; its sweeps and their history stay, and its name is free again."""
    schedule = get_schedule(session, schedule_id)
    require_owner(principal, schedule.created_by, f"schedule {schedule_id}", "delete")
    schedule.deleted_at, schedule.enabled = now(), False
    schedule.name = f"{schedule.name[:170]} (deleted #{schedule.id})"
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/schedules/{schedule_id}/trigger", status_code=status.HTTP_201_CREATED, response_model=FireOut,
             responses={429: {"description": "The token submits too often, or has too many sweeps queued."}})
def trigger(*, schedule_id: ScheduleId, session: SessionDep, settings: SettingsDep, request: Request,
            principal: Writer) -> FireOut:
    """Fire now, marked manual, under the schedule's concurrency policy (a skip is answered as one).
    It counts as a submit for the token's rate and queue limits."""
    schedule = get_schedule(session, schedule_id)
    require_owner(principal, schedule.created_by, f"schedule {schedule_id}", "trigger")
    request.app.state.submit_rate.admit(principal.name)
    check_queue_quota(session, principal.name, settings.max_queued_sweeps_per_token)
    moment = now()
    made = fire(session, schedule, moment, moment, limits=Limits.of(settings),
                heartbeat_timeout=settings.heartbeat_timeout_seconds, outcome=FireOutcome.MANUAL)
    session.commit()
    sweep = session.get(Sweep, made.sweep_id) if made.sweep_id is not None else None
    return FireOut.build(made, sweep, outcome_counts(session, [sweep.id])[sweep.id] if sweep else None)


@router.get("/schedules/{schedule_id}/sweeps", response_model=Page[FireOut])
def history(*, schedule_id: ScheduleId, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> Page[FireOut]:
    """Every fire time handled, newest first: its sweep with its status and runs by outcome and,
    once it finished, how it compares with its baseline; or why there is none (skipped, missed,
    refused)."""
    get_schedule(session, schedule_id)
    fires, total = schedule_fires(session, schedule_id, limit=limit, offset=offset)
    ids = [s.id for _, s in fires if s is not None]
    counts = outcome_counts(session, ids)
    compared = stored_comparisons(session, ids)
    return Page(items=[FireOut.build(f, s, counts.get(s.id) if s else None, compared.get(s.id) if s else None)
                       for f, s in fires], total=total, limit=limit, offset=offset)


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
    parsed = _cron(cron, timezone, source="query")
    start = after or now()
    if not 1970 <= start.year <= LAST_YEAR:
        raise InvalidRequest([{"loc": ["after"], "type": "value_error",
                               "msg": f"give a moment between the years 1970 and {LAST_YEAR}"}], source="query")
    return CronPreviewOut(cron=parsed.expression, timezone=parsed.timezone, description=parsed.describe(),
                          fire_times=parsed.fire_times(start, count))
