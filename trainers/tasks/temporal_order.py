"""The temporal order problem with a vanilla tanh RNN (Pascanu, Mikolov & Bengio 2013, after
Hochreiter & Schmidhuber 1997), as generated in their code (pascanur/trainingRNNs, tempOrder.py).

Each sequence is `seq_len` symbols out of 6, one-hot encoded: two relevant symbols A (channel 0)
and B (channel 1) and four distractors (channels 2–5). Every position holds a random distractor
except two: one position in [10%, 20%) of the sequence and one in [50%, 60%) each hold A or B,
uniformly. After reading the whole sequence the network names the order it saw: class
2·first + second, i.e. 0 = AA, 1 = AB, 2 = BA, 3 = BB. The first relevant symbol lies
0.8·seq_len steps before the end, so solving the task needs gradient signal over that span.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainers.counter_rng import integers
from trainers.tasks.base import DrawnDataTask, TrialCost
from trainers.tasks.rnn import TanhRNNParams, build_tanh_rnn

N_SYMBOLS = 6
N_CLASSES = 4


@dataclass(frozen=True)
class TemporalOrderParams(TanhRNNParams):
    """seq_len, hidden, init, init_std, recurrent_gain, eval_size (see trainers/tasks/rnn.py)."""


def relevant_windows(seq_len: int) -> tuple[range, range]:
    """The positions that may hold the first and the second relevant symbol."""
    width = seq_len // 10
    return range(width, 2 * width), range(seq_len // 2, seq_len // 2 + width)


class TemporalOrderTask(DrawnDataTask):
    """Temporal order problem (Pascanu et al. 2013): classify the order of two symbols in a noisy sequence.

    Inputs (seq_len, batch, 6) one-hot; targets (batch,) class indices 0–3 (AA, AB, BA, BB); the
    TanhRNN of the adding task (same `init` options) maps its last hidden state to 4 logits; the
    loss is the mean cross-entropy. Chance scores ln 4 ≈ 1.386, and a network that has only learned
    the second, nearer symbol scores ln 2 ≈ 0.693. The default convergence target, a cross-entropy
    of 0.05 on a fixed held-out batch, means solved: the geometric mean of the probability given to
    the right class is then ≥ e^−0.05 ≈ 0.95, and practically every sequence is classified right.
    """

    name = "temporal_order"
    Params = TemporalOrderParams
    default_target_loss = 0.05
    head_parameters = ("w_out", "b_out")

    def build_model(self, seed: int) -> nn.Module:
        return build_tanh_rnn(self.params, seed, n_in=N_SYMBOLS, n_out=N_CLASSES)

    def cost(self, batch_size: int) -> TrialCost:
        return self.params.cost(N_SYMBOLS, N_CLASSES, batch_size)

    def draw(self, seeds: torch.Tensor, stream: str, step: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (S, seq_len, n, 6) one-hot; targets (S, n) class indices."""
        T = self.params.seq_len
        first_window, second_window = relevant_windows(T)
        symbols = integers(seeds, f"{stream}.symbols", step, (T, n), 2, N_SYMBOLS)
        first_pos = integers(seeds, f"{stream}.first_pos", step, (1, n), first_window.start, first_window.stop)
        second_pos = integers(seeds, f"{stream}.second_pos", step, (1, n), second_window.start, second_window.stop)
        first = integers(seeds, f"{stream}.first", step, (1, n), 0, 2)
        second = integers(seeds, f"{stream}.second", step, (1, n), 0, 2)
        symbols = symbols.scatter(1, first_pos, first).scatter(1, second_pos, second)
        x = F.one_hot(symbols, N_SYMBOLS).to(torch.float32)
        return x, (2 * first + second).view(len(seeds), n)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output, target)
