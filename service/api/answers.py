"""Encoded answers kept while nothing they were computed from can change.

A sweep's summary is a function of its status and its runs' outcomes, and a run's outcome is
written once (every write to it is guarded by `outcome IS NULL`), so a summary keyed by the
sweep, its status, how many of its runs have an outcome and the tolerance is the same answer for
as long as that key holds. The dashboard polls the summary of the sweeps people watch; with this
cache the polls that find nothing new cost one small query (queries.sweeps.sweep_state) instead
of reading and bootstrapping every run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Hashable


class AnswerCache:
    """A least-recently-used map of keys to encoded bodies, bounded by their total size."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # handlers run on a thread pool

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._bodies.get(key)
            if body is not None:
                self._bodies.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes // 4:  # one huge answer must not flush every other
            return
        with self._lock:
            old = self._bodies.pop(key, None)
            self._size += len(body) - (len(old) if old is not None else 0)
            self._bodies[key] = body
            while self._size > self.max_bytes:
                _, evicted = self._bodies.popitem(last=False)
                self._size -= len(evicted)
