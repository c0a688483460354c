"""/api/v1/schedules/{id}/webhooks: where a schedule's events go, signed the Standard Webhooks way,
and every delivery with its attempts. The signing secret is in the 201 answer only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from sqlalchemy import func, select

from service.api.alert_schemas import (
    MAX_WEBHOOKS_PER_SCHEDULE,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
)
from service.api.auth import READ, Writer, require_owner
from service.api.deps import Limit, Offset, ScheduleId, SessionDep, SettingsDep
from service.api.schemas import Page
from service.clock import now
from service.db.models import Webhook, WebhookAttempt, WebhookDelivery
from service.errors import Conflict, InvalidRequest, NotFound, WebhookNotFound
from service.lifecycle.outbox import redeliver
from service.queries.schedules import get_schedule
from service.spec import INT32_MAX
from service.webhooks.addresses import UnsafeUrl, resolve_checked
from service.webhooks.signing import new_secret

router = APIRouter(prefix="/api/v1/schedules/{schedule_id}/webhooks", tags=["webhooks"],
                   dependencies=[Depends(READ)])
WebhookId = Annotated[int, Path(ge=0, le=INT32_MAX, description="A webhook's id.")]
DeliveryId = Annotated[int, Path(ge=0, le=INT32_MAX, description="A delivery's id.")]


def _webhook(session: SessionDep, schedule_id: int, webhook_id: int) -> Webhook:
    get_schedule(session, schedule_id)
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook.schedule_id != schedule_id or hook.deleted_at is not None:
        raise WebhookNotFound(schedule_id, webhook_id)
    return hook


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated,
             responses={409: {"description": f"The schedule has {MAX_WEBHOOKS_PER_SCHEDULE} webhooks already."}})
def add(*, schedule_id: ScheduleId, body: WebhookIn, session: SessionDep, settings: SettingsDep,
        principal: Writer) -> WebhookCreated:
    """Send the schedule's `events` to `url`, each signed with the secret this answer holds (and
    no other will). The URL must reach a public address (checked now and at every delivery)."""
    schedule = get_schedule(session, schedule_id)
    require_owner(principal, schedule.created_by, f"schedule {schedule_id}", "add a webhook to")
    try:
        resolve_checked(body.url, allow_private=settings.webhook_allow_private)
    except UnsafeUrl as exc:
        raise InvalidRequest([{"loc": ["url"], "type": "value_error", "msg": str(exc)}], source="body") from None
    live = session.scalar(select(func.count()).select_from(Webhook).where(
        Webhook.schedule_id == schedule_id, Webhook.deleted_at.is_(None))) or 0
    if live >= MAX_WEBHOOKS_PER_SCHEDULE:
        raise Conflict(f"schedule {schedule_id} has {live} webhooks, the most it may have; delete one first")
    hook = Webhook(schedule_id=schedule_id, url=body.url, events=sorted({e.value for e in body.events}),
                   secret=new_secret(), enabled=True, created_at=now(), created_by=principal.name)
    session.add(hook)
    session.commit()
    return WebhookCreated(**WebhookOut.build(hook, whole_url=True).model_dump(), secret=hook.secret)


@router.get("", response_model=list[WebhookOut])
def list_all(*, schedule_id: ScheduleId, session: SessionDep) -> list[WebhookOut]:
    get_schedule(session, schedule_id)
    hooks = session.scalars(select(Webhook).where(Webhook.schedule_id == schedule_id, Webhook.deleted_at.is_(None))
                            .order_by(Webhook.id))
    return [WebhookOut.build(h) for h in hooks]


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete(*, schedule_id: ScheduleId, webhook_id: WebhookId, session: SessionDep, principal: Writer) -> Response:
    """Stop sending to it; what it was sent stays readable."""
    hook = _webhook(session, schedule_id, webhook_id)
    require_owner(principal, hook.created_by, f"webhook {webhook_id}", "delete")
    hook.deleted_at, hook.enabled = now(), False
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=Page[DeliveryOut])
def deliveries(*, schedule_id: ScheduleId, webhook_id: WebhookId, session: SessionDep, limit: Limit = 50,
               offset: Offset = 0) -> Page[DeliveryOut]:
    """Every event sent (or to send) to the webhook, newest first, each attempt with its status and latency."""
    hook = _webhook(session, schedule_id, webhook_id)
    rows = list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
                                .order_by(WebhookDelivery.id.desc()).limit(limit).offset(offset)))
    attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in rows}
    for attempt in session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(attempts)))
                                   .order_by(WebhookAttempt.id)):
        attempts[attempt.delivery_id].append(attempt)
    total = session.scalar(select(func.count()).select_from(WebhookDelivery)
                           .where(WebhookDelivery.webhook_id == hook.id)) or 0
    return Page(items=[DeliveryOut.build(d, attempts[d.id]) for d in rows], total=total, limit=limit, offset=offset)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut,
             responses={409: {"description": "The webhook is disabled."}})
def redeliver_one(*, schedule_id: ScheduleId, webhook_id: WebhookId, delivery_id: DeliveryId, session: SessionDep,
                  principal: Writer) -> DeliveryOut:
    """Send a delivery again now, with the same webhook-id and body (a receiver that deduplicates
    by the id sees it once), and a fresh series of retries."""
    hook = _webhook(session, schedule_id, webhook_id)
    require_owner(principal, hook.created_by, f"webhook {webhook_id}", "redeliver to")
    if not hook.enabled:
        raise Conflict(f"webhook {webhook_id} is disabled ({hook.disabled_reason}); add it again to send to it")
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.webhook_id != hook.id:
        raise NotFound(f"webhook {webhook_id} has no delivery with id {delivery_id}")
    redeliver(session, delivery, now())
    session.commit()
    attempts = list(session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery.id)
                                    .order_by(WebhookAttempt.id)))
    return DeliveryOut.build(delivery, attempts)
