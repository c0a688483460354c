"""Keep freed CPU memory in the process, so a training step does not page-fault its way through
fresh memory every time.

A vectorized chunk allocates tensors of hundreds of megabytes each step (the saved hidden states of
every seed and step, their gradients). glibc serves blocks that large with mmap and hands them back
to the kernel on free, so the next step touches brand-new pages: on the benchmark's 256-seed chunk
that page faulting took half of each step. Telling glibc never to use mmap and not to trim its heap
makes those blocks reused instead. The price is that the process keeps its peak heap size, which
for a process that trains chunk after chunk is the size it needs anyway. This is the effect
PyTorch's CPU performance guide gets by preloading jemalloc or tcmalloc, without another library.

mallopt applies to the main thread's heap. A thread gets an arena of its own, and glibc still
serves big blocks there with mmap; Ray Tune runs a trial in such a thread. So processes that train
in threads (Ray's workers) are started with the same settings as environment variables
(`allocator_environment`, which glibc reads at process start), including one arena for all threads.

Whether to do any of this is the caller's choice (the service's `keep_freed_memory` setting): like
everything in trainers/, this module reads no environment of its own.
"""

from __future__ import annotations

import ctypes
import functools
import sys

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


_TRIM_THRESHOLD = 2**31 - 1   # the heap is (practically) never trimmed
_TOP_PAD = 64 * 2**20          # and grows in 64 MiB steps rather than page by page


def allocator_environment() -> dict[str, str]:
    """The same settings as glibc environment variables, for processes started to train (their
    threads included); empty off Linux."""
    if not sys.platform.startswith("linux"):
        return {}
    return {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(_TRIM_THRESHOLD),
            "MALLOC_TOP_PAD_": str(_TOP_PAD), "MALLOC_ARENA_MAX": "1"}


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory instead of returning it to the kernel, once per process.
    True if the setting took effect; False off glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_MAX, 0),  # large blocks come from the heap, which is reused
        (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD),
        (_M_TOP_PAD, _TOP_PAD),
    ))
