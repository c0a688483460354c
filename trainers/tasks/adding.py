"""The adding problem with a vanilla tanh RNN, laid out as in Pascanu, Mikolov & Bengio (2013).

Each sequence has two input channels: values drawn from U[0, 1) and a marker channel that is 1 at
exactly two positions, one in the first 10% of the sequence and one in 10%–50%. The target is the
mean of the two marked values. The network reads the whole sequence and predicts the target from
its last hidden state. Long sequences make the recurrent Jacobian product steep: the classic cliff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import torch
from torch import nn

from trainers.config import ConfigError
from trainers.seeding import generator
from trainers.tasks.base import Task


@dataclass(frozen=True)
class AddingParams:
    seq_len: int = 50
    hidden: int = 50
    init: Literal["basic_tanh"] = "basic_tanh"
    init_std: float = 0.1
    eval_size: int = 500

    def __post_init__(self) -> None:
        if self.seq_len < 10:
            raise ConfigError("seq_len", f"must be >= 10 (two marker regions), got {self.seq_len}")
        if self.hidden < 1:
            raise ConfigError("hidden", f"must be >= 1, got {self.hidden}")
        if not self.init_std > 0:
            raise ConfigError("init_std", f"must be > 0, got {self.init_std}")
        if self.eval_size < 1:
            raise ConfigError("eval_size", f"must be >= 1, got {self.eval_size}")


class TanhRNN(nn.Module):
    """h_t = tanh(W_in x_t + W_hh h_{t-1} + b); y = W_out h_T + b_out.

    Written from linear algebra rather than nn.RNN so the same weights can later be batched over
    seeds (nn.RNN does not vectorize under torch.func.vmap).
    """

    def __init__(self, n_in: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.w_in = nn.Parameter(torch.empty(hidden, n_in))
        self.w_hh = nn.Parameter(torch.empty(hidden, hidden))
        self.b = nn.Parameter(torch.zeros(hidden))
        self.w_out = nn.Parameter(torch.empty(n_out, hidden))
        self.b_out = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (seq_len, batch, n_in) -> (batch, n_out)."""
        # The input projection of every step at once: one matmul instead of seq_len small ones.
        drive = torch.matmul(x, self.w_in.T) + self.b
        h = torch.zeros(x.shape[1], self.w_hh.shape[0], dtype=x.dtype, device=x.device)
        for t in range(x.shape[0]):
            h = torch.tanh(drive[t] + h @ self.w_hh.T)
        return h @ self.w_out.T + self.b_out


class AddingTask(Task):
    """Adding problem (Pascanu et al. 2013): predict the mean of two marked values in a sequence.

    `basic_tanh` initializes every weight from N(0, init_std) (0.1 in the paper). The default
    convergence target is an MSE of 0.01 on a fixed held-out batch, a quarter of the 0.0417 that
    predicting the mean of the target distribution scores.
    """

    name = "adding"
    Params = AddingParams
    default_target_loss = 0.01

    def build_model(self, seed: int) -> nn.Module:
        p: AddingParams = self.params
        model = TanhRNN(2, p.hidden, 1)
        gen = generator(seed, "init")
        with torch.no_grad():
            for param in (model.w_in, model.w_hh, model.w_out):
                param.copy_(torch.randn(param.shape, generator=gen) * p.init_std)
        return model

    def _sample(self, gen: torch.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        T = self.params.seq_len
        values = torch.rand(T, batch, generator=gen)
        first = torch.randint(0, max(1, T // 10), (batch,), generator=gen)
        second = torch.randint(max(1, T // 10), T // 2, (batch,), generator=gen)
        markers = torch.zeros(T, batch)
        cols = torch.arange(batch)
        markers[first, cols] = 1.0
        markers[second, cols] = 1.0
        target = 0.5 * (values[first, cols] + values[second, cols])
        return torch.stack([values, markers], dim=-1), target.unsqueeze(-1)

    def batches(self, seed: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = generator(seed, "data")
        while True:
            yield self._sample(gen, batch_size)

    def eval_batch(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._sample(generator(seed, "eval"), self.params.eval_size)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.mean((output - target) ** 2)
