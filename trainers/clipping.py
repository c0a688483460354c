"""Gradient clipping strategies: small classes in a registry, each reporting its telemetry.

Every clipper reports, every step, the pre-clip global L2 norm of the gradient (divergence detection
reads it: a NaN or infinite norm is a divergence, even though clipping would pass NaN through), the
post-clip norm and whether it changed the gradient.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch

from trainers.config import ConfigError
from trainers.params import Parametrized


@dataclass(frozen=True)
class ClipTelemetry:
    pre_norm: float
    post_norm: float
    clipped: bool


def global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm over all gradient tensors together, as one 0-d tensor."""
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


class Clipper(Parametrized, ABC):
    """Rescales gradients in place. Subclasses set `name` and `Params` (a frozen dataclass)."""

    def clip(self, parameters: Iterable[torch.nn.Parameter]) -> ClipTelemetry:
        grads = [p.grad for p in parameters if p.grad is not None]
        # One host sync per step: the loop needs the norm as a number for divergence detection.
        pre = float(global_norm(grads))
        if not math.isfinite(pre):
            # Nothing sensible to rescale; the loop stops the run as diverged before any update.
            return ClipTelemetry(pre, pre, False)
        return self._clip(grads, pre)

    @abstractmethod
    def _clip(self, grads: list[torch.Tensor], pre_norm: float) -> ClipTelemetry:
        """Rescale `grads` in place, given their finite pre-clip global norm."""


@dataclass(frozen=True)
class NoParams:
    pass


class NoClipper(Clipper):
    """No clipping: the gradient is used as computed (the baseline arm)."""

    name = "none"
    Params = NoParams

    def _clip(self, grads: list[torch.Tensor], pre_norm: float) -> ClipTelemetry:
        return ClipTelemetry(pre_norm, pre_norm, False)


@dataclass(frozen=True)
class NormParams:
    max_norm: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_norm > 0:
            raise ConfigError("max_norm", f"must be > 0, got {self.max_norm!r}")


class GlobalNormClipper(Clipper):
    """Norm clipping (Pascanu et al. 2013): when the global L2 norm g exceeds max_norm, scale the
    whole gradient by max_norm / g. The direction is kept; the step is bounded."""

    name = "norm"
    Params = NormParams

    def _clip(self, grads: list[torch.Tensor], pre_norm: float) -> ClipTelemetry:
        max_norm = self.params.max_norm
        if pre_norm <= max_norm:
            return ClipTelemetry(pre_norm, pre_norm, False)
        scale = max_norm / pre_norm
        torch._foreach_mul_(grads, scale)
        return ClipTelemetry(pre_norm, max_norm, True)


CLIPPERS: dict[str, type[Clipper]] = {cls.name: cls for cls in (NoClipper, GlobalNormClipper)}


def build_clipper(method: str, params: Mapping[str, Any] | None = None) -> Clipper:
    try:
        cls = CLIPPERS[method]
    except KeyError:
        raise ConfigError("method", f"unknown clipping method {method!r}; known: {sorted(CLIPPERS)}") from None
    return cls(params)
