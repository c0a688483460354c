"""Value clipping: each gradient entry on its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from trainers.clipping.base import Clipper
from trainers.errors import ConfigError


@dataclass(frozen=True)
class ValueParams:
    clip_value: float = 1.0

    def __post_init__(self) -> None:
        if not self.clip_value > 0:
            raise ConfigError("clip_value", f"must be > 0, got {self.clip_value!r}")


class ValueClipper(Clipper):
    """Value clipping: clamp every gradient entry to [-clip_value, clip_value].

    Unlike norm clipping this changes the gradient's direction: only the entries that are too large
    shrink. A seed counts as clipped when any of its entries lay outside the interval. NaN entries
    stay NaN (torch.clamp propagates them), so detection still sees the divergence."""

    name = "value"
    Params = ValueParams

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        c = self.params.clip_value
        clipped = torch.zeros_like(pre_norm, dtype=torch.bool)
        for g in grads:
            clipped |= (g.reshape(g.shape[0], -1).abs() > c).any(dim=1)
            g.clamp_(-c, c)
        return clipped
