"""The webhook outbox: an event becomes one delivery row per subscribed webhook, in the transaction
that made the event (so an event is never lost, nor sent for something rolled back); a sender
claims due rows, sends them and records each attempt.

At least once, never a new identity: a delivery's `msg_id` (the webhook-id header) and body are
fixed when it is written. A sender claims a row by moving its next_attempt_at a lease ahead and
committing before it sends; if it dies between sending and recording, the row falls due again
when the lease passes and is sent again, with the same id, which is how a receiver recognises
a duplicate.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.models import Webhook, WebhookAttempt, WebhookDelivery
from service.states import DeliveryState, WebhookEvent
from service.webhooks.signing import new_message_id
from service.webhooks.transport import Attempt

# Seconds before each retry: about a day in all, then the delivery is given up.
RETRY_SECONDS = (5.0, 60.0, 300.0, 1800.0, 7200.0, 28800.0, 86400.0)
JITTER = 0.1  # each wait ±10%, so receivers that failed together are not retried together


def to_json(value: Any) -> Any:
    """`value` with non-finite floats spelled as the API spells them ("NaN", "Infinity")."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def enqueue(session: Session, schedule_id: int, event: WebhookEvent, body: dict[str, Any],
            at: datetime) -> list[WebhookDelivery]:
    """One pending delivery of `body` for each live webhook of the schedule that subscribed to
    `event`. The caller commits, with whatever made the event."""
    hooks = session.scalars(select(Webhook).where(Webhook.schedule_id == schedule_id, Webhook.enabled,
                                                  Webhook.deleted_at.is_(None)).order_by(Webhook.id))
    text = json.dumps(to_json({"type": event.value, "timestamp": at.isoformat(), **body}), allow_nan=False,
                      ensure_ascii=False, separators=(",", ":"))
    made = [WebhookDelivery(webhook_id=hook.id, msg_id=new_message_id(), event=event.value, body=text,
                            state=DeliveryState.PENDING, attempts=0, next_attempt_at=at, created_at=at)
            for hook in hooks if event.value in hook.events]
    session.add_all(made)
    return made


@dataclass(frozen=True)
class Claimed:
    """What a sender needs to send a delivery, read while it held the row."""

    delivery_id: int
    webhook_id: int
    url: str
    secret: str
    msg_id: str
    body: bytes


def claim_due(session: Session, at: datetime, lease_seconds: float, limit: int = 10) -> list[Claimed]:
    """Take up to `limit` deliveries due at `at`, leasing each for `lease_seconds` (the caller
    commits before sending). SKIP LOCKED on PostgreSQL: several senders never take the same row."""
    rows = session.execute(
        select(WebhookDelivery, Webhook).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= at)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id).limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDelivery)).all()
    claimed = []
    for delivery, hook in rows:
        delivery.next_attempt_at = at + timedelta(seconds=lease_seconds)
        claimed.append(Claimed(delivery.id, hook.id, hook.url, hook.secret, delivery.msg_id,
                               delivery.body.encode()))
    session.flush()
    return claimed


def record(session: Session, delivery_id: int, attempt: Attempt, at: datetime, *,
           retry_seconds: Sequence[float] = RETRY_SECONDS, rng: random.Random | None = None) -> WebhookDelivery:
    """Store one attempt and what follows from it: delivered (2xx), a retry after the next wait,
    given up after the last, or, on 410 Gone, the webhook disabled with its pending deliveries."""
    delivery = session.get_one(WebhookDelivery, delivery_id, with_for_update=True)
    session.add(WebhookAttempt(delivery_id=delivery_id, attempted_at=at, status=attempt.status,
                               latency_ms=attempt.latency_ms, error=attempt.error))
    delivery.attempts += 1
    delivery.last_status, delivery.last_error = attempt.status, attempt.error
    if attempt.status is not None and 200 <= attempt.status < 300:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = DeliveryState.DELIVERED, at, None
    elif attempt.status == 410:
        disable(session, delivery.webhook_id, "the receiver answered 410 Gone", at)
    elif delivery.attempts > len(retry_seconds):
        delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
    else:
        wait = retry_seconds[delivery.attempts - 1] * (1 + JITTER * (2 * (rng or random).random() - 1))
        delivery.next_attempt_at = at + timedelta(seconds=wait)
    session.flush()
    return delivery


def disable(session: Session, webhook_id: int, reason: str, at: datetime) -> None:
    """Stop a webhook: it gets no new deliveries, and its pending ones are given up."""
    hook = session.get_one(Webhook, webhook_id)
    hook.enabled, hook.disabled_reason = False, f"{reason} ({at:%Y-%m-%d %H:%M}Z)"
    session.execute(update(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id,
                                                  WebhookDelivery.state == DeliveryState.PENDING)
                    .values(state=DeliveryState.FAILED, next_attempt_at=None, last_error=f"webhook disabled: {reason}"))


def redeliver(session: Session, delivery: WebhookDelivery, at: datetime) -> WebhookDelivery:
    """Send a delivery again now, with the same id and body, and a fresh series of retries."""
    delivery.state, delivery.next_attempt_at, delivery.attempts = DeliveryState.PENDING, at, 0
    session.flush()
    return delivery
