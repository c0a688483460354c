"""Engine tests run with one intra-op thread: batched kernels of tiny test models gain nothing from
a second thread, and when the machine is busy (the server tests' Ray workers, another job)
OpenMP's waiting threads can make each small kernel a thousand times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)
