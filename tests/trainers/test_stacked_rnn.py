"""TanhRNN.forward_stacked, the seed-batched recurrence with hand-written backpropagation through
time that vectorized chunks of the recurrent tasks train with: its gradients against autograd's
(gradcheck in float64) and its outputs and gradients against vmap over the plain module."""

from __future__ import annotations

import platform

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from trainers.allocator import keep_freed_memory
from trainers.tasks.rnn import TanhRNN, TanhRNNParams, _tanh_, _TanhRNN, build_tanh_rnn

S, T, B, N_IN, N_OUT = 3, 12, 5, 2, 4


def stacked(dtype: torch.dtype = torch.float32) -> tuple[TanhRNN, dict[str, torch.Tensor]]:
    # recurrent_gain 1.5 makes the recurrence steep enough for the gradients to differ per seed
    models = [build_tanh_rnn(TanhRNNParams(seq_len=T, hidden=7, recurrent_gain=1.5), seed, N_IN, N_OUT)
              for seed in range(S)]
    params, _ = stack_module_state(models)
    return models[0], {k: v.detach().to(dtype).requires_grad_() for k, v in params.items()}


def _rnn_inputs(seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(S, T, B, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    w_in = torch.randn(S, 7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(S, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    w_hh = (0.5 * torch.randn(S, 7, 7, generator=gen, dtype=torch.float64)).requires_grad_()
    return x, w_in, b, w_hh


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_in_place_tanh_is_tanh_to_a_few_ulp_over_the_whole_range(dtype: torch.dtype) -> None:
    """On the CPU _tanh_ is 2·sigmoid(2z) − 1, not torch.tanh: within 2e-7 of the exact value in
    float32, exact to rounding in float64, bounded, and ±1, 0 and NaN where tanh is."""
    z = torch.cat([torch.linspace(-40, 40, 400_001, dtype=dtype),
                   torch.tensor([0.0, 1e-30, -1e-30, float("inf"), -float("inf"), float("nan")], dtype=dtype)])
    exact = z.to(torch.float64).tanh()
    got = _tanh_(z.clone())
    assert got.dtype == dtype
    finite = ~exact.isnan()
    tolerance = 2e-7 if dtype == torch.float32 else 1e-15
    assert (got[finite].to(torch.float64) - exact[finite]).abs().max() <= tolerance
    assert got[-1].isnan() and got[-3] == 1 and got[-2] == -1 and got[-6] == 0
    assert got.abs()[finite].max() <= 1


def test_the_recurrence_gradient_matches_autograd_numerically() -> None:
    """Every input's gradient, x's included (training never needs it, a plugin's model might)."""
    assert torch.autograd.gradcheck(_TanhRNN.apply, _rnn_inputs(0))


def test_a_strided_input_gets_the_same_gradient() -> None:
    # The counter-based data arrives contiguous, a plugin's may not: the gradient must not depend on strides.
    x, w_in, b, w_hh = _rnn_inputs(1)
    step_major = x.detach().transpose(0, 1).contiguous().requires_grad_()
    assert torch.autograd.gradcheck(lambda xs, *w: _TanhRNN.apply(xs.transpose(0, 1), *w), (step_major, w_in, b, w_hh))


@pytest.mark.parametrize("grad", [True, False], ids=["training", "evaluation"])
def test_forward_stacked_matches_vmap_over_the_module(grad: bool) -> None:
    skeleton, params = stacked()
    x = torch.rand(S, T, B, N_IN, generator=torch.Generator().manual_seed(2))
    target = torch.randn(S, B, N_OUT, generator=torch.Generator().manual_seed(3))

    def loss_one(p: dict[str, torch.Tensor], xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return ((functional_call(skeleton, p, (xs,)) - ys) ** 2).mean()

    with torch.set_grad_enabled(grad):
        ours = ((TanhRNN.forward_stacked(params, x) - target) ** 2).mean(dim=(1, 2))
        reference = vmap(loss_one)(params, x, target)
    torch.testing.assert_close(ours, reference)
    if grad:
        ours_grads = torch.autograd.grad(ours.sum(), list(params.values()))
        reference_grads = torch.autograd.grad(reference.sum(), list(params.values()))
        for name, a, b in zip(params, ours_grads, reference_grads):
            torch.testing.assert_close(a, b, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keeping_freed_memory_takes_effect_once_per_process_on_glibc() -> None:
    assert keep_freed_memory() is True
    assert keep_freed_memory.cache_info().currsize == 1  # mallopt runs once per process
