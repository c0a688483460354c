"""The Task interface: what a cliff-prone training problem provides to the loop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from trainers.params import Parametrized


class Task(Parametrized, ABC):
    """A training problem. Subclasses set `name`, `Params` (a frozen dataclass with defaults whose
    `__post_init__` raises ConfigError on bad values) and `default_target_loss`.

    Everything random is drawn from `trainers.seeding` streams of the seed, so seed s gives the same
    initial weights and the same batches whatever the clipping arm or learning rate.
    """

    default_target_loss: ClassVar[float]
    # Whether a chunk of seeds can train as one model under torch.func.vmap (no nn.RNN/GRU/LSTM,
    # no data-dependent Python control flow). A task that cannot trains its seeds one after another.
    vectorizable: ClassVar[bool] = True
    # Names of the parameters (prefixes, as in model.named_parameters()) of the output layer:
    # AGC leaves it unclipped by default.
    head_parameters: ClassVar[tuple[str, ...]] = ()

    def head_mask(self, names: list[str]) -> tuple[bool, ...]:
        return tuple(any(n == h or n.startswith(h + ".") for h in self.head_parameters) for n in names)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {**super().describe(), "default_target_loss": cls.default_target_loss}

    @abstractmethod
    def build_model(self, seed: int) -> nn.Module:
        """The model with seed `seed`'s initial weights, on the CPU."""

    @abstractmethod
    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """An endless stream of (inputs, targets) training batches for `seed`, on the CPU."""

    @abstractmethod
    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed held-out batch on which convergence is judged, on the CPU."""

    @abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar training loss."""
