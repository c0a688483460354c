"""Typed SQLAlchemy models. The database is the source of truth for every sweep and run.

Non-finite numbers: SQLite cannot store NaN (it becomes NULL) while PostgreSQL can, so NaN is
stored as NULL on both and the run's `trigger` tells what a NULL means (a `nonfinite_loss` run's
last loss was NaN; a `nonfinite_grad` run's last norm was NaN; after a `loss_explosion` the norm
was never computed). Infinities are stored as they are.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class NanAsNull(TypeDecorator[float]):
    """A double that stores NaN as NULL on every backend (see the module docstring)."""

    impl = Float(precision=53)
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Any) -> float | None:
        return None if value is None or math.isnan(value) else value


def restore_nan(value: float | None, trigger: str | None, nan_trigger: str) -> float | None:
    """A stored value with NaN put back where the run's trigger says its NULL was one."""
    return math.nan if value is None and trigger == nan_trigger else value


# The run fields whose NULL is a NaN under a trigger (see the module docstring). A point's loss is
# always computed (NULL = NaN); its norm is NaN only at a nonfinite_grad run's divergence step.
NAN_TRIGGERS = {"final_loss": "nonfinite_loss", "max_grad_norm": "nonfinite_grad",
                "divergence_grad_norm": "nonfinite_grad"}


def restore_point_nan(loss: float | None, grad_norm: float | None, trigger: str | None,
                      at_divergence: bool) -> tuple[float, float | None]:
    """A stored point's loss and norm with their NaNs put back."""
    return (math.nan if loss is None else loss,
            math.nan if grad_norm is None and at_divergence and trigger == "nonfinite_grad" else grad_norm)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC. PostgreSQL keeps the zone;
    SQLite returns naive datetimes, which API clients would read as their local time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class SweepStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class RunOutcome(str, enum.Enum):
    """A run's final outcome. NULL in the database means the run has none yet."""

    CONVERGED = "converged"
    DIVERGED = "diverged"
    UNCONVERGED = "unconverged"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _enum_values(enum_cls: type[enum.Enum]) -> list[str]:
    return [member.value for member in enum_cls]


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True, default=SweepStatus.QUEUED.value)
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

    runs: Mapped[list[Run]] = relationship(back_populates="sweep", cascade="all, delete-orphan",
                                           passive_deletes=True)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("sweep_id", "cell_index", "seed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    cell_index: Mapped[int] = mapped_column(Integer)
    lr: Mapped[float] = mapped_column(Float(precision=53))
    clip_method: Mapped[str] = mapped_column(String(50))
    clip_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    clip_label: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(16))
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

    sweep: Mapped[Sweep] = relationship(back_populates="runs")


class RunPoint(Base):
    """One downsampled step of a run: loss, pre-clip gradient norm, whether the step was clipped.

    run_id has no foreign key: checking one per inserted point halved the writer's rate on
    PostgreSQL. Points are only written with their run locked (service.results.store_results),
    and a trigger on runs deletes a run's points with it (migration 0004)."""

    __tablename__ = "run_points"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float | None] = mapped_column(NanAsNull)
    grad_norm: Mapped[float | None] = mapped_column(NanAsNull)
    clipped: Mapped[bool] = mapped_column(Boolean)
