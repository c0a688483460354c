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
