"""The Clipper interface. Clippers work on gradients batched over seeds.

Every gradient and weight tensor a clipper sees has a leading seed dimension S (S = 1 for a single
run), and every decision is made per seed: seed s is clipped by its own norm, keeps its own state
(AutoClip's history, ZClip's running statistics), and a NaN in seed s never reaches another seed.

Every clipper reports per seed, every step: the pre-clip global L2 norm (divergence detection reads
it: a NaN or infinite norm is a divergence, though clipping would pass the NaN through), the
post-clip global L2 norm, and whether it changed the gradient. The norms reported are global L2
norms for every method, so arms are comparable whatever norm a method clips by.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch

from trainers.params import Parametrized


@dataclass(frozen=True)
class ClipContext:
    """What a clipper may need to know about the training it serves, given once before step 0."""

    n_seeds: int
    max_steps: int
    device: torch.device
    # Per parameter tensor, in the order of `clip`'s arguments: whether it belongs to the model's
    # output layer (AGC leaves that layer unclipped by default).
    is_head: tuple[bool, ...]


@dataclass(frozen=True)
class ClipTelemetry:
    """Per seed, shape (S,): global L2 norm before and after clipping, and whether it clipped."""

    pre_norm: torch.Tensor
    post_norm: torch.Tensor
    clipped: torch.Tensor


def seed_norms(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm per seed over a list of (S, ...) tensors: shape (S,)."""
    per_tensor = [torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1) for t in tensors]
    return torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1)


def per_seed(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape an (S,) tensor to broadcast against an (S, ...) tensor."""
    return values.reshape(values.shape[0], *([1] * (like.dim() - 1)))


def scale_(grads: Sequence[torch.Tensor], factors: torch.Tensor) -> None:
    """Multiply seed s's gradients by factors[s], in place."""
    for g in grads:
        g.mul_(per_seed(factors, g))


class Clipper(Parametrized, ABC):
    """Rescales gradients in place. Subclasses set `name` and `Params` (a frozen dataclass with
    defaults whose `__post_init__` raises ConfigError naming a bad value), implement `_clip`, and
    allocate per-seed state in `bind` if they keep any."""

    def bind(self, context: ClipContext) -> None:
        """Called once before the first step."""
        self.context = context

    @classmethod
    def state_bytes(cls, n_seeds: int, max_steps: int) -> int:
        """The memory of the per-seed state `bind` allocates, beyond a few numbers a seed (which
        need no accounting): what a trial's budget adds for this clipper (trainers/budget.py)."""
        return 0

    def keep_seeds(self, index: torch.Tensor) -> None:
        """Keep only the per-seed state of the seeds at `index` (a 1-d long tensor into the current
        seed dimension), in that order. The engine calls it when seeds finish and leave the batch;
        stateless clippers have nothing to do."""

    def clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> ClipTelemetry:
        """Clip `grads` (each (S, ...), modified in place) given the current `weights` (same
        shapes, read only)."""
        if not hasattr(self, "context"):
            raise RuntimeError(f"the {self.name!r} clipper is not bound: call bind(ClipContext(...)) once before clip")
        pre = seed_norms(grads)
        clipped = self._clip(grads, weights, pre)
        return ClipTelemetry(pre_norm=pre, post_norm=seed_norms(grads), clipped=clipped)

    @abstractmethod
    def _clip(self, grads: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
              pre_norm: torch.Tensor) -> torch.Tensor:
        """Rescale in place; return the (S,) bool mask of seeds whose gradient changed."""
