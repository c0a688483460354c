"""The adding problem with a vanilla tanh RNN, laid out as in Pascanu, Mikolov & Bengio (2013).

Each sequence has two input channels: values drawn from U[0, 1) and a marker channel that is 1 at
exactly two positions, one in the first 10% of the sequence and one in 10%–50%. The target is the
mean of the two marked values. The network reads the whole sequence and predicts the target from
its last hidden state. Long sequences make the recurrent Jacobian product steep: the classic cliff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from trainers.seeding import generator
from trainers.tasks.base import Task
from trainers.tasks.rnn import TanhRNNParams, build_tanh_rnn

__all__ = ["AddingParams", "AddingTask"]


@dataclass(frozen=True)
class AddingParams(TanhRNNParams):
    """seq_len, hidden, init, init_std, recurrent_gain, eval_size (see trainers/tasks/rnn.py)."""


class AddingTask(Task):
    """Adding problem (Pascanu et al. 2013): predict the mean of two marked values in a sequence.

    `basic_tanh` initializes every weight from N(0, init_std) (0.1 in the paper); `smart_tanh` draws
    input and output weights from N(0, 0.01) and a sparse recurrent matrix (15 non-zeros per unit)
    scaled to spectral radius 0.95; `recurrent_gain` then multiplies the recurrent matrix. The
    default convergence target is an MSE of 0.01 on a fixed held-out batch, a quarter of the 0.0417
    that predicting the mean of the target distribution scores.
    """

    name = "adding"
    Params = AddingParams
    default_target_loss = 0.01
    head_parameters = ("w_out", "b_out")

    def build_model(self, seed: int) -> nn.Module:
        return build_tanh_rnn(self.params, seed, n_in=2, n_out=1)

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
