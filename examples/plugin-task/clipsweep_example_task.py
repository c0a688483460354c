"""An example clipsweep task plugin (see docs/writing-a-task.md).

Install it next to clipsweep (`pip install ./examples/plugin-task`) and sweeps can name
`task: {name: sine_mlp}`; `GET /api/v1/tasks` lists it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from trainers import ConfigError, Task
from trainers.seeding import generator


@dataclass(frozen=True)
class SineParams:
    depth: int = 6
    width: int = 32
    harmonics: int = 3
    eval_size: int = 256

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 64:
            raise ConfigError("depth", f"must be in [1, 64], got {self.depth}")
        if self.width < 1:
            raise ConfigError("width", f"must be >= 1, got {self.width}")
        if self.harmonics < 1:
            raise ConfigError("harmonics", f"must be >= 1, got {self.harmonics}")
        if self.eval_size < 1:
            raise ConfigError("eval_size", f"must be >= 1, got {self.eval_size}")


class SineMLPTask(Task):
    """Deep tanh MLP regressing a seeded mixture of sines on [-π, π] (an example plugin).

    Each seed draws its own mixture (amplitudes and phases), its own initial weights and its own
    inputs. The default target is an MSE of 0.01.
    """

    name = "sine_mlp"
    Params = SineParams
    default_target_loss = 0.01
    head_parameters = ("head",)

    def build_model(self, seed: int) -> nn.Module:
        p: SineParams = self.params
        gen = generator(seed, "init")
        layers: list[nn.Module] = []
        width_in = 1
        for _ in range(p.depth):
            linear = nn.Linear(width_in, p.width)
            with torch.no_grad():
                linear.weight.copy_(torch.randn(linear.weight.shape, generator=gen) / math.sqrt(width_in))
                linear.bias.zero_()
            layers += [linear, nn.Tanh()]
            width_in = p.width
        model = nn.Sequential()
        model.add_module("body", nn.Sequential(*layers))
        model.add_module("head", nn.Linear(width_in, 1))
        with torch.no_grad():
            model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=gen) / math.sqrt(width_in))
            model.head.bias.zero_()
        return model

    def _mixture(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = generator(seed, "mixture")
        k = self.params.harmonics
        return torch.randn(k, generator=gen), torch.rand(k, generator=gen) * 2 * math.pi

    def _sample(self, seed: int, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        amplitudes, phases = self._mixture(seed)
        x = (torch.rand(n, 1, generator=gen) * 2 - 1) * math.pi
        freqs = torch.arange(1, len(amplitudes) + 1, dtype=torch.float32)
        y = (amplitudes * torch.sin(x * freqs + phases)).sum(dim=1, keepdim=True)
        return x, y

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = generator(seed, "data")
        while True:
            yield self._sample(seed, gen, batch_size)

    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sample(seed, generator(seed, "eval"), self.params.eval_size)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.mean((output - target) ** 2)
