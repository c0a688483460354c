"""Clippers that bound each parameter tensor, or each output unit of it, by its own norm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from trainers.clipping.base import Clipper, per_seed
from trainers.errors import ConfigError


def shrink_factors(size: torch.Tensor, limit: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where `size` exceeds `limit`: the factor limit / size that brings it down, else 1; and that
    mask. The divisor is replaced by 1 wherever the factor is not used, so a zero (or NaN) size
    never produces a 0/0 or x/0 even in the discarded branch of the `where`."""
    hit = size > limit  # False for NaN: a NaN gradient is left as it is, for detection to see
    return torch.where(hit, limit / torch.where(hit, size, 1.0), 1.0), hit


@dataclass(frozen=True)
class PerLayerParams:
    max_norm: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_norm > 0:
            raise ConfigError("max_norm", f"must be > 0, got {self.max_norm!r}")


class PerLayerClipper(Clipper):
    """Per-layer norm clipping: each parameter tensor whose L2 norm exceeds max_norm is scaled to it.

    Each tensor keeps its direction, but the balance between tensors changes, so the whole gradient
    generally does not. A seed counts as clipped when any of its tensors was scaled."""

    name = "per_layer"
    Params = PerLayerParams

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        clipped = torch.zeros_like(pre_norm, dtype=torch.bool)
        for g in grads:
            norm = torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)
            factor, hit = shrink_factors(norm, self.params.max_norm)
            g.mul_(per_seed(factor, g))
            clipped |= hit
        return clipped


def unit_norms(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each output unit of an (S, ...) tensor, shaped to broadcast against it: a row
    (S, out, 1, ...) for tensors of two or more dims per seed, the whole tensor (S, 1) or (S,) for
    biases and scalars, which have no output dimension to split along."""
    if t.dim() <= 2:
        return per_seed(torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1), t)
    return torch.linalg.vector_norm(t, dim=tuple(range(2, t.dim())), keepdim=True)


@dataclass(frozen=True)
class AGCParams:
    clipping: float = 0.01
    eps: float = 1e-3
    clip_head: bool = False

    def __post_init__(self) -> None:
        if not self.clipping > 0:
            raise ConfigError("clipping", f"must be > 0, got {self.clipping!r}")
        if not self.eps > 0:
            raise ConfigError("eps", f"must be > 0, got {self.eps!r}")


class AGCClipper(Clipper):
    """Adaptive gradient clipping (Brock et al. 2021): each unit's gradient norm is bounded by its weight norm.

    For every output unit i of every parameter tensor (a row of a weight, the whole of a bias),
    when ‖G_i‖ / max(‖W_i‖, eps) > clipping, G_i is rescaled to clipping · max(‖W_i‖, eps) · G_i/‖G_i‖.
    `eps` keeps zero-initialised weights (biases) from freezing. As in the paper, the output layer
    (ClipContext.is_head) is left unclipped unless `clip_head`. A seed counts as clipped when any
    unit of it was rescaled."""

    name = "agc"
    Params = AGCParams

    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        p = self.params
        clipped = torch.zeros_like(pre_norm, dtype=torch.bool)
        # strict: a head flag list that does not match the tensors would silently clip the wrong ones.
        for g, w, head in zip(grads, weights, self.context.is_head, strict=True):
            if head and not p.clip_head:
                continue
            # detach: if the engine passes weights that require grad, the factor must not drag
            # the gradient into an autograd graph.
            limit = unit_norms(w.detach()).clamp_min(p.eps) * p.clipping
            factor, hit = shrink_factors(unit_norms(g), limit)
            g.mul_(factor)
            clipped |= hit.reshape(hit.shape[0], -1).any(dim=1)
        return clipped
