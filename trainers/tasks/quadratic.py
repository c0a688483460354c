"""A convex quadratic, f(x) = ½ Σ λᵢ xᵢ²: the one place where the divergence threshold is known.

Gradient descent multiplies coordinate i by (1 − lr·λᵢ) each step, so plain GD (SGD, momentum 0,
no noise: the problem is full-batch) converges for lr < 2/λmax and diverges for lr > 2/λmax, the
λmax coordinate growing by |1 − lr·λmax| per step. Norm clipping caps the step's length, so a
clipped run at any lr cannot run away: it ends bouncing in a region of radius about lr·max_norm
around the minimum. A sanity check for the whole pipeline, and the textbook picture of the cliff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from trainers.errors import ConfigError
from trainers.seeding import generator
from trainers.tasks.base import Task, TrialCost


@dataclass(frozen=True)
class QuadraticParams:
    dim: int = 3
    lambda_min: float = 1.0
    lambda_max: float = 100.0
    x0_std: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.dim <= 1_000_000:
            raise ConfigError("dim", f"must be in [1, 1000000], got {self.dim}")
        if not self.lambda_min > 0:
            raise ConfigError("lambda_min", f"must be > 0, got {self.lambda_min}")
        if not self.lambda_max >= self.lambda_min:
            raise ConfigError("lambda_max", f"must be >= lambda_min ({self.lambda_min}), got {self.lambda_max}")
        if not self.x0_std > 0:
            raise ConfigError("x0_std", f"must be > 0, got {self.x0_std}")


def eigenvalues(params: QuadraticParams) -> torch.Tensor:
    """dim values geometrically spaced from lambda_min to lambda_max (both exact), float32; for
    dim 1 just lambda_max."""
    if params.dim == 1:
        return torch.tensor([params.lambda_max], dtype=torch.float32)
    ratio = params.lambda_max / params.lambda_min
    values = [params.lambda_min * ratio ** (i / (params.dim - 1)) for i in range(params.dim)]
    values[0], values[-1] = params.lambda_min, params.lambda_max
    return torch.tensor(values, dtype=torch.float32)


class Quadratic(nn.Module):
    """Holds the point x (a parameter) and the eigenvalues λ (a buffer). The forward ignores its
    input's values and returns f(x) = ½ Σ λᵢ xᵢ² in the input's shape (one copy per element)."""

    def __init__(self, lambdas: torch.Tensor) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.zeros_like(lambdas))
        self.register_buffer("lambdas", lambdas.clone())

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        value = 0.5 * torch.sum(self.lambdas * self.x * self.x)
        return value.expand(inp.shape)


class QuadraticTask(Task):
    """Convex quadratic f(x) = ½ Σ λᵢ xᵢ²; plain gradient descent diverges exactly when lr > 2/λmax.

    The eigenvalues λ are `dim` values geometrically spaced from lambda_min to lambda_max, by
    default (1, 10, 100), so that plain GD diverges above lr = 0.02. The "model" is the point x,
    started at x0 ~ N(0, x0_std²) per coordinate from the seed's "init" stream. Full batch: every
    batch (and the evaluation batch) is the same dummy input zeros(1) with target zeros(1), whatever
    the batch size, and loss(model(input), target) is f(x) exactly. There is no output layer. The
    default convergence target f ≤ 1e-3 is about five orders of magnitude below the typical f(x0)
    (55.5 in expectation for the defaults); GD at lr = 2/(λmin + λmax), the best fixed step,
    reaches it in about 300 steps.
    """

    name = "quadratic"
    Params = QuadraticParams
    default_target_loss = 1e-3
    head_parameters = ()

    def build_model(self, seed: int) -> nn.Module:
        p: QuadraticParams = self.params
        model = Quadratic(eigenvalues(p))
        with torch.no_grad():
            model.x.copy_(torch.randn(p.dim, generator=generator(seed, "init")) * p.x0_std)
        return model

    def cost(self, batch_size: int) -> TrialCost:
        """The point x and its eigenvalues; full batch, whatever the batch size."""
        return TrialCost(parameters=self.params.dim, training=2 * self.params.dim, evaluation=self.params.dim)

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            yield torch.zeros(1), torch.zeros(1)

    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(1), torch.zeros(1)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The mean of f(x) − target over the (single) element: f(x) itself for target 0."""
        return torch.mean(output - target)
