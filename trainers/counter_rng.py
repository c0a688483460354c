"""Counter-based random numbers: each number a pure function of (seed, stream, step, index).

torch's generators are sequential, so a chunk of S seeds drawing its batches from S generators
steps them one by one on the host and then copies the batch to the device. At thousands of seeds
on a GPU that costs more than the training itself. Counter-based numbers (the idea of Random123
and of JAX's PRNG) have no state: every seed's batch of a step is drawn at once, on the device
that trains. Only integer arithmetic is involved, so seed s gets bit-identical numbers alone on
the CPU and among 4,096 seeds on a GPU, and the uniform floats derived from them are exact too.

The hash is a 32-bit xorshift-multiply mixer (constants from Wellons' hash-prospector, bias about
0.11). Three applications turn (seed, stream, step) into a key; one more, of key XOR index, gives
each number. It is a bijection, so within one (seed, stream, step) distinct indices never get the
same bits. It is meant for synthetic training data, not for cryptography: the tests check
uniformity and that neighbouring numbers and different seeds are uncorrelated.
"""

from __future__ import annotations

import hashlib
import math

import torch

MASK32 = 0xFFFFFFFF


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A bijection of [0, 2^32), on int64 tensors. x < 2^32 and the constants are < 2^31, so no
    product reaches 2^63: the arithmetic is exact on every device."""
    x = x ^ (x >> 16)
    x = (x * 0x21F0AAAD) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x735A2D97) & MASK32
    return x ^ (x >> 15)


def _stream_word(stream: str) -> int:
    return int.from_bytes(hashlib.blake2b(stream.encode(), digest_size=4).digest(), "little")


def bits(seeds: torch.Tensor, stream: str, step: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform integers in [0, 2^32) (int64) of shape (len(seeds), *shape), on seeds' device.

    `seeds` are non-negative integers below 2^63; `step` (below 2^32) numbers the draws of a
    stream, e.g. the training step whose batch this is."""
    if not 0 <= step <= MASK32:
        raise ValueError(f"step must be in [0, 2^32), got {step}")
    s = seeds.to(torch.int64)
    key = _mix((s & MASK32) ^ _stream_word(stream))
    key = _mix(key ^ ((s >> 32) & MASK32))
    key = _mix(key ^ step)
    index = torch.arange(math.prod(shape), dtype=torch.int64, device=seeds.device)
    return _mix(key[:, None] ^ index).view(len(seeds), *shape)


def uniform(seeds: torch.Tensor, stream: str, step: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Floats in [0, 1) on the float32 grid k·2⁻²⁴ (exact on every device), shape (len(seeds), *shape)."""
    return (bits(seeds, stream, step, shape) >> 8).to(torch.float32) * 2.0**-24


def integers(seeds: torch.Tensor, stream: str, step: int, shape: tuple[int, ...],
             low: int, high: int) -> torch.Tensor:
    """Integers in [low, high) (int64), shape (len(seeds), *shape): Lemire's multiply-shift, whose
    bias (at most (high − low)/2³²) is far below anything a training run could notice."""
    if not 0 < high - low < 2**31:
        raise ValueError(f"need low < high and a range under 2^31, got [{low}, {high})")
    return low + ((bits(seeds, stream, step, shape) * (high - low)) >> 32)
