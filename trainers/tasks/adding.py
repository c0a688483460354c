"""The adding problem with a vanilla tanh RNN, laid out as in Pascanu, Mikolov & Bengio (2013).

Each sequence has two input channels: values drawn from U[0, 1) and a marker channel that is 1 at
exactly two positions, one in the first 10% of the sequence and one in 10%–50%. The target is the
mean of the two marked values. The network reads the whole sequence and predicts the target from
its last hidden state. Long sequences make the recurrent Jacobian product steep: the classic cliff.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainers.counter_rng import integers, uniform
from trainers.tasks.base import DrawnDataTask, TrialCost
from trainers.tasks.rnn import TanhRNNParams, build_tanh_rnn

__all__ = ["AddingParams", "AddingTask"]


@dataclass(frozen=True)
class AddingParams(TanhRNNParams):
    """seq_len, hidden, init, init_std, recurrent_gain, eval_size (see trainers/tasks/rnn.py)."""


class AddingTask(DrawnDataTask):
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

    def cost(self, batch_size: int) -> TrialCost:
        return self.params.cost(2, 1, batch_size)

    def draw(self, seeds: torch.Tensor, stream: str, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (S, seq_len, n, 2): values and markers; targets (S, n, 1)."""
        T = self.params.seq_len
        values = uniform(seeds, f"{stream}.values", step, (T, n))
        first = integers(seeds, f"{stream}.first", step, (1, n), 0, T // 10)
        second = integers(seeds, f"{stream}.second", step, (1, n), T // 10, T // 2)
        positions = torch.arange(T, device=seeds.device).view(1, T, 1)
        markers = ((positions == first) | (positions == second)).to(torch.float32)
        target = 0.5 * (values.gather(1, first) + values.gather(1, second))
        return torch.stack([values, markers], dim=-1), target.view(len(seeds), n, 1)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.mean((output - target) ** 2)
