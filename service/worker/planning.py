"""Turning a sweep's pending runs into trials: one per (cell, chunk of seeds)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class TrialPlan:
    """One Ray Tune trial: these seeds of one cell, trained together under the cell's stored
    config (a TrainConfig dict)."""

    cell_index: int
    train_config: dict[str, Any]
    seeds: list[int]


def plan_trials(configs: Mapping[int, dict[str, Any]], pending: Sequence[tuple[int, int]],
                max_seeds_per_trial: int) -> list[TrialPlan]:
    """Chunks of at most `max_seeds_per_trial` seeds per cell, as even in size as possible, for
    the runs in `pending` ((cell_index, seed) pairs) only: a resumed sweep trains nothing twice.
    `configs` holds each stored cell's config by cell index."""
    by_cell: dict[int, list[int]] = {}
    for cell_index, seed in pending:
        by_cell.setdefault(cell_index, []).append(seed)
    plans = []
    for cell_index in sorted(by_cell):
        seeds = by_cell[cell_index]
        # 10 seeds at most 4 per trial: 4 + 3 + 3, not 4 + 4 + 2, so trials end together.
        n_chunks = math.ceil(len(seeds) / max_seeds_per_trial)
        base, extra = divmod(len(seeds), n_chunks)
        start = 0
        for i in range(n_chunks):
            size = base + (i < extra)
            plans.append(TrialPlan(cell_index, configs[cell_index], seeds[start:start + size]))
            start += size
    return plans
