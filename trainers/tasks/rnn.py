"""The vanilla tanh RNN shared by the recurrent tasks (adding, temporal_order), its parameters and
its initializations, as in Pascanu, Mikolov & Bengio (2013) and their code (pascanur/trainingRNNs).

Initializations (`init`):

* `basic_tanh` — every weight matrix (input, recurrent, output) from N(0, init_std); 0.1 in the
  paper. Biases zero.
* `smart_tanh` — input and output weights from N(0, 0.01); the recurrent matrix sparse, 15
  non-zero entries per row (per unit: its incoming recurrent weights) drawn from N(0, 1), then
  rescaled to spectral radius 0.95. `init_std` is not used. Biases zero.

Either way the recurrent matrix is then multiplied by `recurrent_gain` (1.0 leaves it as drawn): a
gain above 1 steepens the recurrent Jacobian product and so the cliffs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from trainers.errors import ConfigError
from trainers.seeding import generator
from trainers.tasks.base import TrialCost

# smart_tanh: non-zero recurrent weights per unit, and the spectral radius the matrix is scaled to.
SMART_NONZEROS = 15
SMART_SPECTRAL_RADIUS = 0.95
SMART_IO_STD = 0.01


@dataclass(frozen=True)
class TanhRNNParams:
    """Parameters common to the tasks solved by a TanhRNN."""

    seq_len: int = 50
    hidden: int = 50
    init: Literal["basic_tanh", "smart_tanh"] = "basic_tanh"
    init_std: float = 0.1
    recurrent_gain: float = 1.0
    eval_size: int = 500

    def __post_init__(self) -> None:
        if not 10 <= self.seq_len <= 100_000:
            raise ConfigError("seq_len", f"must be in [10, 100000] (two marker regions), got {self.seq_len}")
        if not 1 <= self.hidden <= 65_536:
            raise ConfigError("hidden", f"must be in [1, 65536], got {self.hidden}")
        if not self.init_std > 0:
            raise ConfigError("init_std", f"must be > 0, got {self.init_std}")
        if not (self.recurrent_gain > 0 and math.isfinite(self.recurrent_gain)):
            raise ConfigError("recurrent_gain", f"must be a finite number > 0, got {self.recurrent_gain}")
        if not 1 <= self.eval_size <= 1_000_000:
            raise ConfigError("eval_size", f"must be in [1, 1000000], got {self.eval_size}")

    def cost(self, n_in: int, n_out: int, batch_size: int) -> TrialCost:
        """The RNN's weights; per training example the inputs and, for backpropagation through
        time, every step's hidden state and pre-activation; per evaluation example the inputs."""
        h, t = self.hidden, self.seq_len
        return TrialCost(parameters=h * n_in + h * h + h + n_out * h + n_out,
                         training=batch_size * (t * (n_in + 2 * h) + n_out),
                         evaluation=self.eval_size * (t * n_in + h + n_out))


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
        w_hh_t = self.w_hh.T
        # unbind, not drive[t]: indexing's backward writes each step's gradient into a zero tensor
        # the size of all of `drive`, which is quadratic in seq_len and dominated batched training.
        for drive_t in drive.unbind(0):
            h = torch.tanh(drive_t + h @ w_hh_t)
        return h @ self.w_out.T + self.b_out

    @staticmethod
    def forward_stacked(params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The forward of S seeds' models at once: `params` stacked along a leading seed dimension
        (as torch.func.stack_module_state gives them), x: (S, seq_len, batch, n_in) -> (S, batch, n_out).

        The vectorized trainer uses this instead of vmap over `forward`: the recurrence runs as
        batched matrix products with backpropagation through time written out (_TanhRNN), which
        spares autograd a graph of seq_len × several small nodes and their allocations.
        """
        w_in, w_hh, b = params["w_in"], params["w_hh"], params["b"]
        if torch.is_grad_enabled():
            h = _TanhRNN.apply(x, w_in, b, w_hh)
        else:
            h = _tanh_recurrence_inference(x, w_in, w_hh, b)
        return torch.baddbmm(params["b_out"].unsqueeze(1), h, params["w_out"].transpose(1, 2))


def _tanh_(z: torch.Tensor) -> torch.Tensor:
    """tanh in place. On the CPU as 2·sigmoid(2z) − 1, which is twice as fast there: torch's
    float32 tanh on the CPU (Sleef, 1 ulp) took a quarter of a 256-seed training step. The result
    is within 2e-7 of tanh (torch's own is within 3e-8), and tanh's derivative 1 − h² applies to
    it as it is. Other devices have a fast tanh of their own."""
    if z.device.type != "cpu":
        return z.tanh_()
    return z.mul_(2).sigmoid_().mul_(2).sub_(1)


def _tanh_step(out: torch.Tensor, h_prev: torch.Tensor | None, x_t: torch.Tensor, w_in_t: torch.Tensor,
               w_hh_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """out = tanh(x_t W_in^T + b + h_prev W_hh^T) for every seed, built in place in `out` (no
    pre-activation tensor, no copy into the state); `h_prev` None is the first step, h = 0."""
    if h_prev is None:
        torch.bmm(x_t, w_in_t, out=out)
    else:
        torch.bmm(h_prev, w_hh_t, out=out).baddbmm_(x_t, w_in_t)
    return _tanh_(out.add_(bias))


def _tanh_recurrence_inference(x: torch.Tensor, w_in: torch.Tensor, w_hh: torch.Tensor,
                               b: torch.Tensor) -> torch.Tensor:
    """The last hidden state without keeping the others: evaluation batches are large, and
    nothing needs the history without a backward pass. x: (S, T, B, n_in). Two buffers in turn."""
    S, T, B, _ = x.shape
    w_in_t, w_hh_t, bias = w_in.transpose(1, 2), w_hh.transpose(1, 2), b.unsqueeze(1)
    buffers = torch.empty(2, S, B, w_hh.shape[1], dtype=x.dtype, device=x.device)
    h = None
    for t in range(T):
        h = _tanh_step(buffers[t % 2], h, x[:, t], w_in_t, w_hh_t, bias)
    return h


class _TanhRNN(torch.autograd.Function):
    """h_t = tanh(x_t W_in^T + b + h_{t-1} W_hh^T), h_{-1} = 0, for a stack of seeds; returns h_{T-1}.

    x: (S, T, B, n_in), any strides; w_in: (S, H, n_in); b: (S, H); w_hh: (S, H, H). Each step's
    pre-activation is built in place in that step's slot of one preallocated state buffer: no
    input-projection tensor for the whole sequence, and no copy of it into the states, which on
    2 CPU cores took a third of the forward pass. A fresh multi-megabyte tensor per step would
    cost more in page faults than the step's arithmetic. Backward is backpropagation through time
    by hand: per step, from the pre-activations' gradient dz (one small buffer, reused), one
    batched product for the hidden state's gradient and one accumulating each of W_hh's and
    W_in's, and a sum for b's. (Keeping every step's dz for one product over the whole sequence
    at the end wrote and read back 100 MB a step at 256 seeds, and was slower.)
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_in: torch.Tensor, b: torch.Tensor,
                w_hh: torch.Tensor) -> torch.Tensor:
        S, T, B, _ = x.shape
        states = torch.empty(T, S, B, w_hh.shape[1], dtype=x.dtype, device=x.device)
        w_in_t, w_hh_t, bias = w_in.transpose(1, 2), w_hh.transpose(1, 2), b.unsqueeze(1)
        for t in range(T):
            _tanh_step(states[t], states[t - 1] if t else None, x[:, t], w_in_t, w_hh_t, bias)
        ctx.save_for_backward(x, w_in, states, w_hh)
        return states[-1].clone()

    @staticmethod
    @once_differentiable  # the saved states are not a graph: no second derivative through them
    def backward(ctx: Any, grad_h: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, w_in, states, w_hh = ctx.saved_tensors
        T, S, B, H = states.shape
        need_x, need_w_in, need_b, _ = ctx.needs_input_grad
        grad_x = torch.empty_like(x) if need_x else None
        # W_in's gradient accumulates transposed, x_t^T dz: MKL's batched product with n_in (two)
        # output columns, dz^T x_t, ran 3-4 times slower.
        grad_w_in_t = w_in.new_zeros(S, w_in.shape[2], H)
        grad_b = w_in.new_zeros(S, H)
        grad_w = torch.zeros_like(w_hh)
        dz = torch.empty_like(grad_h)  # one step's gradient at the pre-activations, reused: it stays in cache
        dh = grad_h.contiguous()
        dh_next = torch.empty_like(dh)
        for t in range(T - 1, -1, -1):
            torch.ops.aten.tanh_backward.grad_input(dh, states[t], grad_input=dz)
            grad_w_in_t.baddbmm_(x[:, t].transpose(1, 2), dz)
            grad_b.add_(dz.sum(1))
            if need_x:
                grad_x[:, t] = torch.bmm(dz, w_in)
            if t:
                grad_w.baddbmm_(dz.transpose(1, 2), states[t - 1])
                dh = torch.bmm(dz, w_hh, out=dh_next)
        return (grad_x, grad_w_in_t.transpose(1, 2) if need_w_in else None, grad_b if need_b else None, grad_w)


def spectral_radius(matrix: torch.Tensor) -> float:
    """The largest eigenvalue modulus, computed on the CPU in float64."""
    return float(torch.linalg.eigvals(matrix.detach().to("cpu", torch.float64)).abs().max())


def smart_recurrent_matrix(hidden: int, gen: torch.Generator) -> torch.Tensor:
    """A (hidden, hidden) float32 matrix with min(15, hidden) N(0, 1) entries per row at random
    columns, the rest zero, rescaled to spectral radius 0.95."""
    k = min(SMART_NONZEROS, hidden)
    values = torch.randn(hidden, hidden, generator=gen, dtype=torch.float64)
    # A random permutation of the columns per row (one draw for all rows): keep the first k.
    columns = torch.rand(hidden, hidden, generator=gen).argsort(dim=1)[:, :k]
    mask = torch.zeros(hidden, hidden, dtype=torch.bool)
    mask.scatter_(1, columns, True)
    matrix = torch.where(mask, values, torch.zeros((), dtype=torch.float64))
    radius = spectral_radius(matrix)
    if radius > 0.0:  # zero only for a nilpotent draw, which has probability zero
        matrix = matrix * (SMART_SPECTRAL_RADIUS / radius)
    return matrix.to(torch.float32)


def build_tanh_rnn(params: TanhRNNParams, seed: int, n_in: int, n_out: int) -> TanhRNN:
    """A TanhRNN with seed `seed`'s initial weights, drawn from its "init" stream."""
    model = TanhRNN(n_in, params.hidden, n_out)
    gen = generator(seed, "init")
    with torch.no_grad():
        if params.init == "basic_tanh":
            # Order and arithmetic pinned: the adding task's stored seeds depend on these numbers.
            for param in (model.w_in, model.w_hh, model.w_out):
                param.copy_(torch.randn(param.shape, generator=gen) * params.init_std)
        else:
            model.w_in.copy_(torch.randn(model.w_in.shape, generator=gen) * SMART_IO_STD)
            model.w_hh.copy_(smart_recurrent_matrix(params.hidden, gen))
            model.w_out.copy_(torch.randn(model.w_out.shape, generator=gen) * SMART_IO_STD)
        if params.recurrent_gain != 1.0:
            model.w_hh.mul_(params.recurrent_gain)
    return model
