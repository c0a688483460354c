"""Drawing training batches in blocks: one generator call fills many batches, sliced afterwards.

A block holds `max(1, BLOCK_EXAMPLES // batch_size)` batches, so the stream is a pure function of
(seed, batch_size, task params): batch k of the stream is always the same numbers.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

BLOCK_EXAMPLES = 4096

Sampler = Callable[[torch.Generator, int], Sequence[torch.Tensor]]


def blocked_batches(sample: Sampler, gen: torch.Generator, batch_size: int,
                    batch_dims: Sequence[int]) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield batches of `batch_size` examples forever: `sample(gen, n)` draws n examples at once,
    each returned tensor holding the examples along its dimension `batch_dims[i]`."""
    per_block = max(1, BLOCK_EXAMPLES // batch_size)
    while True:
        block = sample(gen, per_block * batch_size)
        for k in range(per_block):
            yield tuple(t.narrow(d, k * batch_size, batch_size).contiguous()
                        for t, d in zip(block, batch_dims))
