"""Seeded random streams. Seed s must give the same weights and the same data in every clipping arm.

Each purpose (initial weights, training data, evaluation data) draws from its own generator derived
from (seed, stream name), so that changing how much one stream consumes never shifts another: the
clipped and unclipped arms of seed s see identical data even if one stops early. These generators
run on the CPU (tensors are moved to the device afterwards), so a seed means the same numbers on CPU
and GPU. Tasks whose data must be drawn on the device for many seeds at once use the counter-based
streams of trainers/counter_rng.py instead, which give the same bits on every device too.
"""

from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for `stream` of `seed`, stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def generator(seed: int, stream: str) -> torch.Generator:
    """A fresh CPU generator for one named stream of one seed."""
    return torch.Generator().manual_seed(stream_seed(seed, stream))
