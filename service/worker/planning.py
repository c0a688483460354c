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
                max_seeds_per_trial: int, slots: int = 1) -> list[TrialPlan]:
    """Chunks of at most `max_seeds_per_trial` seeds per cell, as even in size as possible, for
    the runs in `pending` ((cell_index, seed) pairs) only: a resumed sweep trains nothing twice.
    `configs` holds each stored cell's config by cell index. With fewer chunks than `slots` (the
    trials the cluster runs at once) the chunks are made smaller until there are as many, so a
    round of one or two cells, as an adaptive sweep's or a search's often is, keeps every slot
    busy instead of training on one while the others wait."""
    by_cell: dict[int, list[int]] = {}
    for cell_index, seed in pending:
        by_cell.setdefault(cell_index, []).append(seed)

    def chunks(most: int) -> int:
        return sum(math.ceil(len(seeds) / most) for seeds in by_cell.values())

    # The largest chunk size that still fills the slots (chunks() falls as the size grows), or 1.
    most, high = 1, max_seeds_per_trial
    while most < high:
        mid = (most + high + 1) // 2
        most, high = (mid, high) if chunks(mid) >= slots else (most, mid - 1)
    plans = []
    for cell_index in sorted(by_cell):
        seeds = by_cell[cell_index]
        # 10 seeds at most 4 per trial: 4 + 3 + 3, not 4 + 4 + 2, so trials end together.
        n_chunks = math.ceil(len(seeds) / most)
        base, extra = divmod(len(seeds), n_chunks)
        start = 0
        for i in range(n_chunks):
            size = base + (i < extra)
            plans.append(TrialPlan(cell_index, configs[cell_index], seeds[start:start + size]))
            start += size
    return plans
