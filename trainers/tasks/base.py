"""The Task interface: what a cliff-prone training problem provides to the loop."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from itertools import count
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from trainers.params import Parametrized


@dataclass(frozen=True)
class TrialCost:
    """What one seed of a task holds while it trains, counted in numbers (float32 each): its
    trainable parameters, what one training batch keeps from the forward for the backward (its
    inputs included), and what evaluating the held-out batch holds at once. trainers/budget.py
    turns it into the memory of a trial."""

    parameters: int
    training: int
    evaluation: int


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

    def cost(self, batch_size: int) -> TrialCost | None:
        """An estimate of what one seed holds at this batch size, from the parameters alone
        (nothing is built); None when the task cannot say, and its trials are then not held to a
        memory budget."""
        return None

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


class DrawnDataTask(Task):
    """A task whose data comes from counter-based random numbers (trainers/counter_rng.py):
    `draw(seeds, stream, step, n)` gives batch `step` of every seed in `seeds` at once, on their
    device. The vectorized engine then draws a whole chunk's batch in one call on the device that
    trains (no per-seed host work, no copy), and `batches`/`eval_batch` follow from the same
    function, so a seed sees the same numbers alone or in a chunk. Params need an `eval_size`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Said when the class is defined (a plugin's load error lists it), not at the first evaluation.
        params = cls.__dict__.get("Params")
        if params is not None and "eval_size" not in {f.name for f in dataclasses.fields(params)}:
            raise TypeError(f"{cls.__name__}.Params needs an `eval_size` field (the held-out batch's "
                            "size): a DrawnDataTask draws its evaluation batch with it")

    @abstractmethod
    def draw(self, seeds: torch.Tensor, stream: str, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of `n` examples for each seed, stacked along a leading seed dimension.
        Stream "data" holds the training batches (step k: the k-th), "eval" the held-out batch."""

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        seeds = torch.tensor([seed])
        for step in count():
            x, y = self.draw(seeds, "data", step, batch_size)
            yield x[0], y[0]

    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.draw(torch.tensor([seed]), "eval", 0, self.params.eval_size)
        return x[0], y[0]
