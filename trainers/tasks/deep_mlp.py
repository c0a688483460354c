"""A deep, unnormalized ReLU MLP fitting a random teacher: the feed-forward cliff.

Without normalization or residual connections, a deep ReLU stack's loss surface has sharp walls: the
gradient's size depends on the product of all the layers' gains, and one step too large makes
that product, and the next gradient, explode. He initialization keeps the signal's scale through
the layers at the start but nothing holds it there once training moves the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
from torch import nn

from trainers.errors import ConfigError
from trainers.seeding import generator
from trainers.tasks.base import Task, TrialCost
from trainers.tasks.data import blocked_batches

# Examples drawn from the teacher stream to measure its output scale.
TEACHER_CALIBRATION = 4096


@dataclass(frozen=True)
class DeepMLPParams:
    depth: int = 16
    width: int = 64
    in_dim: int = 32
    out_dim: int = 1
    teacher_width: int = 16
    noise_std: float = 0.0
    eval_size: int = 1000

    def __post_init__(self) -> None:
        if not 2 <= self.depth <= 64:
            raise ConfigError("depth", f"must be in [2, 64] (linear layers), got {self.depth}")
        if not 1 <= self.width <= 4096:
            raise ConfigError("width", f"must be in [1, 4096], got {self.width}")
        if not 1 <= self.in_dim <= 4096:
            raise ConfigError("in_dim", f"must be in [1, 4096], got {self.in_dim}")
        if not 1 <= self.out_dim <= 4096:
            raise ConfigError("out_dim", f"must be in [1, 4096], got {self.out_dim}")
        if not 1 <= self.teacher_width <= 4096:
            raise ConfigError("teacher_width", f"must be in [1, 4096], got {self.teacher_width}")
        if not self.noise_std >= 0:
            raise ConfigError("noise_std", f"must be >= 0, got {self.noise_std}")
        if not 1 <= self.eval_size <= 1_000_000:
            raise ConfigError("eval_size", f"must be in [1, 1000000], got {self.eval_size}")


class DeepMLP(nn.Module):
    """x -> (Linear -> ReLU) × (depth − 1) -> Linear head. x: (batch, in_dim) -> (batch, out_dim)."""

    def __init__(self, depth: int, width: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        dims = [in_dim] + [width] * (depth - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.head(x)

    @staticmethod
    def forward_stacked(params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward of S seeds' models at once, parameters stacked along a leading seed dimension:
        x (S, batch, in_dim) -> (S, batch, out_dim). One batched product per layer, which the
        vectorized trainer uses instead of vmap over `forward`: vmap's per-operation overhead left a
        GPU idle between the small kernels of a deep, narrow network."""
        depth = sum(1 for name in params if name.startswith("layers.") and name.endswith(".weight"))
        for i in range(depth):
            x = torch.relu(torch.baddbmm(params[f"layers.{i}.bias"].unsqueeze(1), x,
                                         params[f"layers.{i}.weight"].transpose(1, 2)))
        return torch.baddbmm(params["head.bias"].unsqueeze(1), x, params["head.weight"].transpose(1, 2))


class Teacher:
    """seed's fixed target function: y = a · tanh(W x) / scale, W ~ N(0, 1/in_dim) (unit-variance
    pre-activations), a ~ N(0, 1), and `scale` the output's standard deviation over a calibration
    sample, so that y has about unit variance for every seed."""

    def __init__(self, params: DeepMLPParams, seed: int) -> None:
        gen = generator(seed, "teacher")
        self.w = torch.randn(params.teacher_width, params.in_dim, generator=gen) / math.sqrt(params.in_dim)
        self.a = torch.randn(params.out_dim, params.teacher_width, generator=gen)
        x = torch.randn(TEACHER_CALIBRATION, params.in_dim, generator=gen)
        self.scale = float(self._raw(x).std())

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w.T) @ self.a.T

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self._raw(x) / self.scale


class DeepMLPTask(Task):
    """Deep unnormalized ReLU MLP (He init) regressing a per-seed random tanh teacher; MSE loss.

    The student has `depth` linear layers (`depth − 1` hidden ReLU layers of `width` units, then a
    linear head), weights Kaiming-normal (fan in, std sqrt(2/fan_in)), biases zero. Inputs are
    x ~ N(0, I) of `in_dim`; targets y = teacher(x) + noise_std·N(0, 1), the teacher a one-hidden-
    layer tanh network of `teacher_width` units drawn from the seed's "teacher" stream and scaled so
    that y has about unit variance: predicting 0 scores an MSE of about 1 + noise_std². The default
    convergence target, an MSE of 0.1 on a fixed held-out batch, means 90% of the teacher's variance
    explained (raise it with noise: the floor is noise_std²).
    """

    name = "deep_mlp"
    Params = DeepMLPParams
    default_target_loss = 0.1
    head_parameters = ("head",)

    def build_model(self, seed: int) -> nn.Module:
        p: DeepMLPParams = self.params
        model = DeepMLP(p.depth, p.width, p.in_dim, p.out_dim)
        gen = generator(seed, "init")
        with torch.no_grad():
            for layer in [*model.layers, model.head]:
                fan_in = layer.weight.shape[1]
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
                layer.bias.zero_()
        return model

    def cost(self, batch_size: int) -> TrialCost:
        """Weights and biases of every layer; per training example the inputs and each layer's
        pre-activation and output; per evaluation example its inputs, targets and one layer."""
        p: DeepMLPParams = self.params
        dims = [p.in_dim] + [p.width] * (p.depth - 1) + [p.out_dim]
        parameters = sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
        return TrialCost(parameters=parameters, training=batch_size * (p.in_dim + 2 * sum(dims[1:])),
                         evaluation=p.eval_size * (p.in_dim + 2 * p.out_dim + p.width))

    def _sampler(self, seed: int):
        p: DeepMLPParams = self.params
        teacher = Teacher(p, seed)

        def sample(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.randn(n, p.in_dim, generator=gen)
            y = teacher(x)
            if p.noise_std > 0:
                y = y + p.noise_std * torch.randn(y.shape, generator=gen)
            return x, y

        return sample

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return blocked_batches(self._sampler(seed), generator(seed, "data"), batch_size, batch_dims=(0, 0))

    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sampler(seed)(generator(seed, "eval"), self.params.eval_size)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.mean((output - target) ** 2)
