"""Turning a sweep's pending runs into trials: one per (cell, chunk of seeds)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

# A cell's seeds are cut into more chunks to fill idle trial slots only while each chunk keeps
# this many: below it a trial's fixed costs (its start, the per-step work its seeds share)
# outweigh what another CPU or GPU gains.
MIN_SPLIT_SEEDS = 8


@dataclass(frozen=True)
class TrialPlan:
    """One Ray Tune trial: these seeds of one cell, trained together under the cell's stored
    config (a TrainConfig dict)."""

    cell_index: int
    train_config: dict[str, Any]
    seeds: list[int]


def plan_trials(configs: Mapping[int, dict[str, Any]], pending: Sequence[tuple[int, int]],
                max_seeds_per_trial: int, free_slots: int = 0) -> list[TrialPlan]:
    """Chunks of at most `max_seeds_per_trial` seeds per cell, as even in size as possible, for
    the runs in `pending` ((cell_index, seed) pairs) only: a resumed sweep trains nothing twice.
    `configs` holds each stored cell's config by cell index.

    With fewer chunks than `free_slots` (trial slots the cluster has idle), the cell with the
    largest chunks is cut into one more, again and again, while its chunks keep MIN_SPLIT_SEEDS
    seeds: the seeds an adaptive round or a search's probe adds, often to one cell, then train on
    every idle slot instead of one, and the decision waiting on them comes sooner."""
    by_cell: dict[int, list[int]] = {}
    for cell_index, seed in pending:
        by_cell.setdefault(cell_index, []).append(seed)
    n_chunks = {cell: math.ceil(len(seeds) / max_seeds_per_trial) for cell, seeds in by_cell.items()}
    while by_cell and sum(n_chunks.values()) < free_slots:
        cell = max(by_cell, key=lambda c: (len(by_cell[c]) / n_chunks[c], -c))
        if len(by_cell[cell]) // (n_chunks[cell] + 1) < MIN_SPLIT_SEEDS:
            break
        n_chunks[cell] += 1
    plans = []
    for cell_index in sorted(by_cell):
        seeds = by_cell[cell_index]
        # 10 seeds at most 4 per trial: 4 + 3 + 3, not 4 + 4 + 2, so trials end together.
        base, extra = divmod(len(seeds), n_chunks[cell_index])
        start = 0
        for i in range(n_chunks[cell_index]):
            size = base + (i < extra)
            plans.append(TrialPlan(cell_index, configs[cell_index], seeds[start:start + size]))
            start += size
    return plans
