"""The models of regression alerts and their delivery: a scheduled sweep's comparison with its
baseline, the alerts it raised, and the webhooks with their outbox and attempts.

    schedules ─┬< alerts
               └< webhooks ─< webhook_deliveries (the outbox) ─< webhook_attempts
    sweeps ─ sweep_comparisons
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db.base import Base
from service.db.types import EnumText, UtcDateTime
from service.states import AlertKind, AlertState, DeliveryState


class SweepComparison(Base):
    """A finished scheduled sweep against its baseline, made once (the primary key): what the
    schedule's history shows, and what raised or resolved its alerts."""

    __tablename__ = "sweep_comparisons"

    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    schedule_id: Mapped[int] = mapped_column(Integer, index=True)
    baseline_sweep_id: Mapped[int | None] = mapped_column(Integer)
    # {"regressions": [...], "improvements": [...], "only_current": n, "only_baseline": n, ...}; None
    # when there was nothing to compare (see detail).
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Alert(Base):
    """A regression (or improvement) of a schedule's sweep against a baseline sweep, with its
    evidence, and where it stands (service/states.AlertState)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_schedule_state", "schedule_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    sweep_id: Mapped[int] = mapped_column(Integer)  # the sweep that showed it first
    baseline_sweep_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[AlertKind] = mapped_column(EnumText(AlertKind))
    measure: Mapped[str] = mapped_column(String(16))  # what changed (an improvement's kind is `improvement`)
    # A cell's configuration hash, or an arm's label (frontier): one active alert per subject and kind.
    subject: Mapped[str] = mapped_column(String(200))
    lr: Mapped[float | None] = mapped_column(Float(precision=53))
    clipping: Mapped[str] = mapped_column(String(200))
    state: Mapped[AlertState] = mapped_column(EnumText(AlertState))
    streak: Mapped[int] = mapped_column(Integer, default=1)  # sweeps in a row that showed it
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)  # counts, rates, intervals, p, q, flipped seeds
    environment_change: Mapped[list[str]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by_sweep_id: Mapped[int | None] = mapped_column(Integer)
    resolution: Mapped[str | None] = mapped_column(Text)


class Webhook(Base):
    """Where a schedule's events go. The signing secret is stored as it must be to sign (HMAC
    needs it); the API shows it once, at creation, and never again."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(100))
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookDelivery(Base):
    """One event for one webhook: the outbox row, written in the transaction that made the event.
    `msg_id` is the webhook-id header, the same on every attempt; `body` the exact bytes signed."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(50))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[DeliveryState] = mapped_column(EnumText(DeliveryState))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When a sender may (re)send it; also its lease: a sender sets it ahead before sending, so a
    # crash between sending and recording sends again once it passes, with the same msg_id.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WebhookAttempt(Base):
    """One try at a delivery: its HTTP status (None: no answer, see error) and latency."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
