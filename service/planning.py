"""Turning a sweep's pending runs into trials: one per (cell, chunk of seeds)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from service.spec import SweepSpec, cells


@dataclass(frozen=True)
class TrialPlan:
    cell_index: int
    train_config: dict[str, Any]
    seeds: list[int]


def plan_trials(spec: SweepSpec, pending: Sequence[tuple[int, int]]) -> list[TrialPlan]:
    """Chunks of at most `max_seeds_per_trial` seeds per cell, as even in size as possible, for the
    runs in `pending` ((cell_index, seed) pairs) only: a resumed sweep trains nothing twice."""
    by_cell: dict[int, list[int]] = {}
    for cell_index, seed in pending:
        by_cell.setdefault(cell_index, []).append(seed)
    limit = spec.resources.max_seeds_per_trial
    plans = []
    for cell in cells(spec):
        seeds = by_cell.get(cell.index, [])
        if not seeds:
            continue
        # 10 seeds at most 4 per trial: 4 + 3 + 3, not 4 + 4 + 2, so trials end together.
        n_chunks = math.ceil(len(seeds) / limit)
        base, extra = divmod(len(seeds), n_chunks)
        start = 0
        for i in range(n_chunks):
            size = base + (i < extra)
            plans.append(TrialPlan(cell.index, cell.config.to_dict(), seeds[start:start + size]))
            start += size
    return plans
