"""Submitting a sweep: the sweep, its cells and all its pending runs, stored in one transaction.

Before anything is expanded, the sweep is held to the limits of the service: its number of runs,
its steps in all, and the memory one of its trials needs (trainers/budget.py). A sweep over any of
them is refused with the figure and the limit, and stores nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from service.clock import now
from service.db.models import Cell, Run, Sweep
from service.errors import SpecError, TooManyRequests
from service.grid import cells
from service.settings import Settings
from service.spec import SweepSpec, resolve_spec
from service.spec_rates import candidate_rates
from service.states import SweepStatus
from trainers.budget import trial_memory_bytes


@dataclass(frozen=True)
class Limits:
    """The most a sweep may ask for (the settings of the same names)."""

    max_runs: int
    max_steps: int = 10**9
    max_trial_memory_mb: float = float("inf")

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(max_runs=settings.max_runs_per_sweep, max_steps=settings.max_sweep_steps,
                   max_trial_memory_mb=settings.max_trial_memory_mb)


def _refused(message: str) -> SpecError:
    return SpecError([{"loc": [], "type": "value_error", "msg": message}])


def check_limits(spec: SweepSpec, limits: Limits) -> None:
    """SpecError naming the figure and the limit, for the first limit the resolved spec exceeds.
    Counts are taken without expanding anything, so a huge spec costs nothing to refuse."""
    runs, arms, lrs, seeds = spec.run_count, len(spec.clipping), len(candidate_rates(spec.learning_rates)), \
        spec.seed_count
    if runs > limits.max_runs:
        raise _refused(f"the grid has {runs} runs ({lrs} learning rates × {arms} arms × {seeds} seeds, at most), "
                       f"more than the limit of {limits.max_runs}; submit fewer, or raise CLIPSWEEP_MAX_RUNS_PER_SWEEP")
    steps = runs * spec.budget.max_steps
    if steps > limits.max_steps:
        raise _refused(f"the sweep asks for {steps} training steps ({runs} runs × {spec.budget.max_steps} steps), "
                       f"more than the limit of {limits.max_steps}; lower max_steps or the grid, or raise "
                       "CLIPSWEEP_MAX_SWEEP_STEPS")
    per_trial = min(seeds, spec.resources.max_seeds_per_trial)
    # The memory depends on the task and the arm, never the learning rate: one cell per arm is enough.
    for cell in cells(spec.model_copy(update={"learning_rates": candidate_rates(spec.learning_rates)[:1]})):
        needed = trial_memory_bytes(cell.config, per_trial)
        if needed is not None and needed / 2**20 > limits.max_trial_memory_mb:
            raise _refused(f"a trial of {per_trial} seeds of arm {cell.label} would need about "
                           f"{needed / 2**20:,.0f} MB, more than the limit of {limits.max_trial_memory_mb:,.0f} MB; "
                           "lower resources.max_seeds_per_trial, the task's sizes or max_steps, or raise "
                           "CLIPSWEEP_MAX_TRIAL_MEMORY_MB")


def check_queue_quota(session: Session, created_by: str | None, max_queued: int) -> None:
    """TooManyRequests when the token already has `max_queued` sweeps waiting in the queue."""
    queued = session.scalar(select(func.count()).select_from(Sweep).where(
        Sweep.created_by.is_(None) if created_by is None else Sweep.created_by == created_by,
        Sweep.status == SweepStatus.QUEUED))
    if queued is not None and queued >= max_queued:
        who = f"token {created_by!r}" if created_by else "this service"
        raise TooManyRequests(f"{who} has {queued} sweeps queued, the most CLIPSWEEP_MAX_QUEUED_SWEEPS_PER_TOKEN "
                              "allows; wait for some to start, or cancel some", retry_after=60)


def create_sweep(session: Session, spec: SweepSpec, *, limits: Limits, **record: Any) -> Sweep:
    """Store a sweep queued for a worker, its grid of cells, and one pending run per cell × seed.
    The caller commits; a refused spec (SpecError) stores nothing. `record` sets more columns of
    the sweep (such as who created it)."""
    spec = resolve_spec(spec)
    check_limits(spec, limits)
    seeds = spec.seed_list
    grid = cells(spec)
    sweep = Sweep(name=spec.name or spec.task.name, task=spec.task.name, spec=spec.model_dump(mode="json"),
                  status=SweepStatus.QUEUED, runs_total=len(grid) * len(seeds), created_at=now(), **record)
    session.add(sweep)
    session.flush()
    session.execute(insert(Cell), [cell.row(sweep.id) for cell in grid])
    session.execute(insert(Run), [
        {"sweep_id": sweep.id, "cell_index": cell.index, "seed": seed} for cell in grid for seed in seeds
    ])
    return sweep
