"""The states a sweep and a run go through, with the rules about them defined once."""

from __future__ import annotations

import enum


class _State(str, enum.Enum):
    def __str__(self) -> str:
        return self.value  # as in f-strings and CSV files, on every Python version


class SweepStatus(_State):
    """queued → running → succeeded | failed | cancelled. A running sweep can go back to queued
    (its worker stopped cleanly, or the cluster cannot place it yet)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_finished(self) -> bool:
        """Whether the sweep has ended for good: nothing will train it again."""
        return self in (SweepStatus.SUCCEEDED, SweepStatus.FAILED, SweepStatus.CANCELLED)


class RunOutcome(_State):
    """A run's final outcome. NULL in the database means the run has none yet (`pending`)."""

    CONVERGED = "converged"
    DIVERGED = "diverged"
    UNCONVERGED = "unconverged"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def is_trained(self) -> bool:
        """Whether the run trained to its end. Failed and cancelled runs say nothing about
        divergence, so no rate counts them."""
        return self in (RunOutcome.CONVERGED, RunOutcome.DIVERGED, RunOutcome.UNCONVERGED)


class AlertState(_State):
    """pending → open → acknowledged → resolved. A regression waits `pending` while `consecutive`
    asks for more sweeps in a row (it resolves silently if the next sweep is back to normal); an
    open or acknowledged one resolves itself when a later sweep is back within the thresholds.
    Improvements are `noted`: recorded, nothing to fix."""

    PENDING = "pending"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    NOTED = "noted"

    def is_active(self) -> bool:
        return self in (AlertState.PENDING, AlertState.OPEN, AlertState.ACKNOWLEDGED)


class AlertKind(_State):
    DIVERGENCE = "divergence"  # a cell diverges more often (exact test, FDR-controlled)
    SLOWDOWN = "slowdown"  # a cell's median steps to target rose
    FRONTIER = "frontier"  # an arm's highest stable learning rate fell
    PROTECTION = "protection"  # a clipped cell that never diverged now does
    IMPROVEMENT = "improvement"  # any of these the other way


class WebhookEvent(_State):
    REGRESSION_DETECTED = "regression.detected"
    REGRESSION_RESOLVED = "regression.resolved"
    SWEEP_FINISHED = "sweep.finished"
    SWEEP_FAILED = "sweep.failed"
    FIRE_MISSED = "schedule.fire_missed"  # a fire time that made no sweep: missed, skipped or refused
    IMPROVEMENT_DETECTED = "improvement.detected"  # only to webhooks that ask for it


class DeliveryState(_State):
    PENDING = "pending"  # to be sent (again) at next_attempt_at
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # every retry spent, or the webhook was disabled (410 Gone)
