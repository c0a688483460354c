"""Stateless clippers: none, global norm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from trainers.clipping.base import Clipper, scale_
from trainers.errors import ConfigError


@dataclass(frozen=True)
class NoParams:
    pass


class NoClipper(Clipper):
    """No clipping: the gradient is used as computed (the baseline arm)."""

    name = "none"
    Params = NoParams

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(pre_norm, dtype=torch.bool)


@dataclass(frozen=True)
class NormParams:
    max_norm: float = 1.0
    norm_type: Literal[2, "inf"] = 2

    def __post_init__(self) -> None:
        if not self.max_norm > 0:
            raise ConfigError("max_norm", f"must be > 0, got {self.max_norm!r}")


class GlobalNormClipper(Clipper):
    """Norm clipping (Pascanu et al. 2013): when the global norm g of the whole gradient exceeds
    max_norm, scale it by max_norm / g. The direction is kept; the step is bounded. `norm_type`
    "inf" measures g as the largest absolute entry instead of the L2 norm."""

    name = "norm"
    Params = NormParams

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        if self.params.norm_type == "inf":
            size = torch.stack([g.reshape(g.shape[0], -1).abs().amax(dim=1) for g in grads], 1).amax(dim=1)
        else:
            size = pre_norm
        # A non-finite gradient is left as it is: divergence detection stops the run on it.
        clipped = torch.isfinite(size) & (size > self.params.max_norm)
        scale_(grads, torch.where(clipped, self.params.max_norm / size, torch.ones_like(size)))
        return clipped

