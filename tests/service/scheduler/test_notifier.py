"""The notifier sending the outbox to a real receiver on loopback, on SQLite and PostgreSQL: signed
deliveries the reference library verifies, retries with the same webhook-id until one is accepted,
410 Gone disabling the webhook, and an address refused after DNS resolution at delivery."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Webhook, WebhookAttempt, WebhookDelivery
from service.db.session import session_scope
from service.lifecycle.outbox import enqueue
from service.lifecycle.schedules import create_schedule
from service.lifecycle.submit import Limits
from service.scheduler.cron import Cron
from service.scheduler.notifier import Notifier
from service.settings import Settings
from service.spec import parse_spec
from service.states import DeliveryState, WebhookEvent
from service.webhooks.signing import new_secret
from tests.factories import SPEC
from tests.receiver import Receiver

SETTINGS = dict(webhook_allow_private=True, webhook_timeout_seconds=2.0, webhook_retry_seconds="0.05,0.05,0.05,0.05")


def webhook(factory: sessionmaker[Session], url: str, events: list[str] | None = None) -> tuple[int, int, str]:
    """A schedule with one webhook: (schedule id, webhook id, secret)."""
    secret = new_secret()
    with session_scope(factory) as session:
        schedule = create_schedule(session, name="nightly", cron=Cron.parse("@daily"), spec=parse_spec(SPEC),
                                   limits=Limits(max_runs=1000), at=datetime.now(timezone.utc))
        hook = Webhook(schedule_id=schedule.id, url=url, events=events or ["sweep.failed"], secret=secret,
                       enabled=True, created_at=datetime.now(timezone.utc))
        session.add(hook)
        session.flush()
        return schedule.id, hook.id, secret


def event(factory: sessionmaker[Session], schedule_id: int, text: str = "sweep 1 of nightly failed") -> None:
    with session_scope(factory) as session:
        enqueue(session, schedule_id, WebhookEvent.SWEEP_FAILED, {"text": text, "data": {"sweep": {"id": 1}}},
                datetime.now(timezone.utc))


def deliver_until_settled(notifier: Notifier, factory: sessionmaker[Session], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notifier.deliver_due()
        with session_scope(factory) as session:
            if not session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.state == DeliveryState.PENDING)):
                return
        time.sleep(0.05)
    raise TimeoutError("deliveries still pending")


def test_a_receiver_that_fails_three_times_gets_the_event_once_more_with_the_same_id(
        session_factory: sessionmaker[Session]) -> None:
    with Receiver(statuses=[500, 503, 500]) as receiver:
        schedule_id, hook_id, secret = webhook(session_factory, receiver.url)
        event(session_factory, schedule_id)
        notifier = Notifier(session_factory, Settings(**SETTINGS))
        deliver_until_settled(notifier, session_factory)
        got = receiver.deliveries
    assert [d.status for d in got] == [500, 503, 500, 204]
    assert len({d.msg_id for d in got}) == 1 and len({d.body for d in got}) == 1
    body = got[-1].verified(secret)  # the Standard Webhooks reference library checks the signature
    assert body["type"] == "sweep.failed" and body["text"] == "sweep 1 of nightly failed"
    with session_scope(session_factory) as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert (delivery.state, delivery.attempts, delivery.last_status) == (DeliveryState.DELIVERED, 4, 204)
        assert delivery.msg_id == got[0].msg_id
        attempts = session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
        assert [a.status for a in attempts] == [500, 503, 500, 204] and all(a.latency_ms > 0 for a in attempts)


def test_every_retry_spent_gives_the_delivery_up(session_factory: sessionmaker[Session]) -> None:
    with Receiver(statuses=[500] * 10) as receiver:
        schedule_id, _, _ = webhook(session_factory, receiver.url)
        event(session_factory, schedule_id)
        deliver_until_settled(Notifier(session_factory, Settings(**SETTINGS)), session_factory)
        assert len(receiver.deliveries) == 5  # the first try and 4 retries
    with session_scope(session_factory) as session:
        assert session.scalars(select(WebhookDelivery.state)).one() is DeliveryState.FAILED


def test_410_gone_disables_the_webhook_and_gives_up_its_pending_deliveries(
        session_factory: sessionmaker[Session]) -> None:
    with Receiver(statuses=[410]) as receiver:
        schedule_id, hook_id, _ = webhook(session_factory, receiver.url)
        event(session_factory, schedule_id, "first")
        event(session_factory, schedule_id, "second")
        notifier = Notifier(session_factory, Settings(**SETTINGS))
        deliver_until_settled(notifier, session_factory)
        event(session_factory, schedule_id, "after")  # a disabled webhook gets no new deliveries
        notifier.deliver_due()
        assert len(receiver.deliveries) == 1
    with session_scope(session_factory) as session:
        hook = session.get_one(Webhook, hook_id)
        assert not hook.enabled and "410 Gone" in (hook.disabled_reason or "")
        states = session.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id)).all()
        assert states == [DeliveryState.FAILED, DeliveryState.FAILED]


def test_an_address_that_resolves_to_loopback_is_refused_at_delivery(session_factory: sessionmaker[Session]) -> None:
    with Receiver() as receiver:
        # Stored while private addresses were allowed; sent after they no longer are. The name
        # `localhost` resolves (through the system's resolver) to loopback.
        url = receiver.url.replace("127.0.0.1", "localhost")
        schedule_id, _, _ = webhook(session_factory, url)
        event(session_factory, schedule_id)
        Notifier(session_factory, Settings(**{**SETTINGS, "webhook_allow_private": False})).deliver_due()
        assert receiver.deliveries == []
    with session_scope(session_factory) as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
        assert delivery.last_status is None and "loopback" in (delivery.last_error or "")
