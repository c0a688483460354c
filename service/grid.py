"""A sweep's grid of cells, resolved once, at submit: what every cell trains, stored in `cells`.

Nothing computes the grid again after submit: planning, `reproduce` and the summary read the
stored cells, so a later change to this code cannot pair a resumed sweep's runs, or two sweeps'
cells, with the wrong configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.spec import ClippingSpec, SweepSpec
from service.spec_rates import first_rates
from trainers.clipping import arm_label
from trainers.config import (
    ClippingConfig,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
)


@dataclass(frozen=True)
class GridCell:
    """One (learning rate, clipping arm) point of the grid, with its ready-to-run config."""

    index: int
    lr: float
    clipping: ClippingConfig
    config: TrainConfig

    @property
    def label(self) -> str:
        return arm_label(self.clipping)

    def row(self, sweep_id: int) -> dict[str, Any]:
        """The cell as a row of `cells` (service/db/models.Cell)."""
        return {"sweep_id": sweep_id, "cell_index": self.index, "lr": self.lr, "clip_method": self.clipping.method,
                "clip_params": dict(self.clipping.params), "clip_label": self.label, "config": self.config.to_dict(),
                "config_hash": self.config.content_hash()}


def cells(spec: SweepSpec) -> list[GridCell]:
    """The grid in a fixed order: learning rates outer, clipping arms inner (a search: its first probe)."""
    out = []
    for lr in first_rates(spec.learning_rates):
        for arm in spec.clipping:
            out.append(cell(spec, len(out), lr, arm))
    return out


def cell(spec: SweepSpec, index: int, lr: float, arm: ClippingSpec) -> GridCell:
    """One cell of the sweep: `arm` at `lr`, with the spec's training settings."""
    clipping = ClippingConfig(arm.method, arm.params)
    return GridCell(index=index, lr=lr, clipping=clipping, config=TrainConfig(
        task=spec.task.name,
        task_params=dict(spec.task.params),
        lr=lr,
        optimizer=OptimizerConfig(**spec.optimizer.model_dump()),
        clipping=clipping,
        max_steps=spec.budget.max_steps,
        batch_size=spec.budget.batch_size,
        divergence=DivergenceConfig(**spec.divergence.model_dump()),
        convergence=ConvergenceConfig(**spec.convergence.model_dump()),
        record_every=spec.record_every,
        device=spec.resources.device,
    ))
