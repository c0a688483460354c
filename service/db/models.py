"""Typed SQLAlchemy models. The database is the source of truth for every sweep, cell and run.

    sweeps ─┬─< cells ─< runs ···< run_points
            └──────────< runs
    api_tokens (sweeps.created_by names one)
    schedules ─< schedule_fires ··· sweeps (a fire's sweep; sweeps.schedule_id)
             ├< schedule_versions (each spec it has had)
             ├< alerts (a sweep's regressions against its baseline sweep)
             └< webhooks ─< webhook_deliveries (the outbox) ─< webhook_attempts
    sweeps ─ sweep_comparisons (a scheduled sweep, once finished, against its baseline)

A sweep's cells are its grid, resolved at submit (service/grid.py); a run is one seed of one cell
and points at it by (sweep_id, cell_index). Run points have no foreign key (see RunPoint).

Non-finite numbers: NaN is stored as NULL on both backends (db/types.NanAsNull) and the run's
`trigger` tells what a NULL means (a `nonfinite_loss` run's last loss was NaN; a `nonfinite_grad`
run's last norm was NaN; after a `loss_explosion` the norm was never computed). Infinities are
stored as they are. db/rows.py reads them back; nothing else needs to know.

The alert and webhook models live in db/alert_models.py and are re-exported here, so importing
this module registers every table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db.alert_models import Alert, SweepComparison, Webhook, WebhookAttempt, WebhookDelivery
from service.db.base import Base
from service.db.types import EnumText, NanAsNull, UtcDateTime
from service.scheduler.policies import CatchUp, Concurrency, FireOutcome, SeedPolicy
from service.states import RunOutcome, SweepStatus


class Sweep(Base):
    """What a user submitted (the resolved spec), and where its queue life stands."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[SweepStatus] = mapped_column(EnumText(SweepStatus), index=True, default=SweepStatus.QUEUED)
    runs_total: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # How many times a worker has claimed the sweep: 1 for a sweep that ran in one go.
    claims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set by POST /cancel on a running sweep; its worker stops the trials and ends it `cancelled`.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Why a queued sweep is not running yet (e.g. waiting for resources), shown to the user.
    status_detail: Mapped[str | None] = mapped_column(Text)
    # A sweep put back to wait (for resources) is not claimed again before this time.
    not_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The name of the API token that submitted it; None when auth was off (or before tokens).
    created_by: Mapped[str | None] = mapped_column(String(100), index=True)
    # The versions its worker trained with (service/environment.py), set at each claim.
    environment: Mapped[dict[str, str | None] | None] = mapped_column(JSON)
    # Steps the unfinished runs of a running sweep have made, as its worker last wrote them with
    # the results of that moment (service/worker/buffer.py); NULL when no worker trains it.
    live_steps: Mapped[int | None] = mapped_column(BigInteger)
    # A sweep a schedule made, for its nominal fire time (UTC): one sweep per fire time, however
    # many schedulers run, by the unique index below. No foreign key: schedules are never deleted
    # (only marked), and adding one to `sweeps` would rebuild it on SQLite.
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    scheduled_for: Mapped[datetime | None] = mapped_column(UtcDateTime)

    cells: Mapped[list[Cell]] = relationship(back_populates="sweep", cascade="all, delete-orphan",
                                             passive_deletes=True, order_by="Cell.cell_index")

    __table_args__ = (Index("uq_sweeps_schedule_fire", "schedule_id", "scheduled_for", unique=True),)


class Cell(Base):
    """One (learning rate, clipping arm) point of a sweep's grid, as resolved at submit: the arm
    (method, its resolved parameters, its label) and the full training configuration, with a
    content hash that is the same for the same configuration in any sweep, on any machine."""

    __tablename__ = "cells"

    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    cell_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    lr: Mapped[float] = mapped_column(Float(precision=53))
    clip_method: Mapped[str] = mapped_column(String(50))
    clip_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    clip_label: Mapped[str] = mapped_column(String(200))
    # TrainConfig.to_dict(): with a seed, it trains any run of the cell again (trainers.run_seed).
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64), index=True)
    # Its runs, and those with an outcome: kept by triggers on runs in the same transaction
    # (migration 0013), never written here; what a summary and a poll read instead of counting.
    run_count: Mapped[int] = mapped_column(Integer, server_default="0")
    done_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # Steps to target over the cell's runs once they all have an outcome, written by the results
    # writer that stores the last (lifecycle/estimates.py, migration 0014): the median and its
    # bootstrap bounds, or why there is none; for `steps_for_runs` runs (stale once runs are added).
    steps_for_runs: Mapped[int | None] = mapped_column(Integer)
    steps_median: Mapped[float | None] = mapped_column(Float(precision=53))
    steps_low: Mapped[float | None] = mapped_column(Float(precision=53))
    steps_high: Mapped[float | None] = mapped_column(Float(precision=53))
    steps_unavailable: Mapped[str | None] = mapped_column(String(500))

    sweep: Mapped[Sweep] = relationship(back_populates="cells")


class Run(Base):
    """One seed of one cell: its outcome and summary numbers (NULL outcome: still pending)."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("sweep_id", "cell_index", "seed"),
        ForeignKeyConstraint(["sweep_id", "cell_index"], ["cells.sweep_id", "cells.cell_index"],
                             ondelete="CASCADE"),
        # The counts a summary and a poll read, from the index alone (migration 0012).
        Index("ix_runs_sweep_cell_outcome", "sweep_id", "cell_index", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    cell_index: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[RunOutcome | None] = mapped_column(EnumText(RunOutcome))
    trigger: Mapped[str | None] = mapped_column(String(32))
    diverged_at_step: Mapped[int | None] = mapped_column(Integer)
    converged_at_step: Mapped[int | None] = mapped_column(Integer)
    steps_done: Mapped[int | None] = mapped_column(Integer)
    initial_loss: Mapped[float | None] = mapped_column(NanAsNull)
    final_loss: Mapped[float | None] = mapped_column(NanAsNull)
    min_loss: Mapped[float | None] = mapped_column(NanAsNull)
    final_eval_loss: Mapped[float | None] = mapped_column(NanAsNull)
    clipped_steps: Mapped[int | None] = mapped_column(Integer)
    max_grad_norm: Mapped[float | None] = mapped_column(NanAsNull)
    # Every step's finite pre-clip norm counted per bin, {"bin": count} (trainers.norm_histogram).
    norm_histogram: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # A diverged run's last computed pre-clip norm (NaN stored as NULL, as max_grad_norm).
    divergence_grad_norm: Mapped[float | None] = mapped_column(NanAsNull)
    device: Mapped[str | None] = mapped_column(String(50))
    node: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Trainings started for this run: more than 1 only after lost infrastructure (a killed worker
    # or Ray actor); a diverged run is never trained again.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    cell: Mapped[Cell] = relationship(viewonly=True)


class ApiToken(Base):
    """A bearer token of the API. The token itself is shown once, at creation, and never stored:
    only its SHA-256 and a short prefix to recognize it by."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RunPoint(Base):
    """One downsampled step of a run: loss, pre-clip gradient norm, whether the step was clipped.

    run_id has no foreign key: checking one per inserted point halved the writer's rate on
    PostgreSQL. Points are only written with their run locked (lifecycle.runs.store_results),
    and a trigger on runs deletes a run's points with it (migration 0004)."""

    __tablename__ = "run_points"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float | None] = mapped_column(NanAsNull)
    grad_norm: Mapped[float | None] = mapped_column(NanAsNull)
    clipped: Mapped[bool] = mapped_column(Boolean)


class Schedule(Base):
    """A sweep spec re-run on a cron expression in a time zone, with its policies."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # resolved, as POST /sweeps stores it
    concurrency: Mapped[Concurrency] = mapped_column(EnumText(Concurrency))
    catch_up: Mapped[CatchUp] = mapped_column(EnumText(CatchUp))
    starting_deadline_seconds: Mapped[int] = mapped_column(Integer)
    seed_policy: Mapped[SeedPolicy] = mapped_column(EnumText(SeedPolicy))
    enabled: Mapped[bool] = mapped_column(Boolean)
    # The first fire time not yet handled; what a scheduler's tick looks for (<= now).
    next_fire_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # Sweeps made so far: a fresh-seeds schedule's next block of seeds follows from it.
    sweeps_made: Mapped[int] = mapped_column(Integer, default=0)
    # Raised by each change of `spec`; every version is kept in schedule_versions.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(100))
    # Deleted schedules stay, marked: their sweeps keep pointing at them.
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When a sweep's difference from its baseline is a regression (analysis.comparison.Thresholds).
    thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A pinned baseline; None: each sweep is compared with the schedule's previous succeeded one.
    baseline_sweep_id: Mapped[int | None] = mapped_column(Integer)


class ScheduleFire(Base):
    """What one fire time of a schedule came to: a sweep, or why none (skipped, missed)."""

    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("schedule_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    scheduled_for: Mapped[datetime] = mapped_column(UtcDateTime)
    outcome: Mapped[FireOutcome] = mapped_column(EnumText(FireOutcome))
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey("sweeps.id", ondelete="SET NULL"))
    # The version of the schedule's spec its sweep was made of.
    schedule_version: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ScheduleVersion(Base):
    """A schedule's spec as it was from `created_at` on: a change of spec is a new version."""

    __tablename__ = "schedule_versions"

    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str | None] = mapped_column(String(100))


__all__ = ["Alert", "ApiToken", "Base", "Cell", "Run", "RunPoint", "Schedule", "ScheduleFire", "ScheduleVersion",
           "Sweep", "SweepComparison", "Webhook", "WebhookAttempt", "WebhookDelivery"]
