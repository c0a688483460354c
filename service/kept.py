"""A least-recently-used map bounded by the total weight of what it keeps: what the API keeps of
the answers it computed (service/api/answers.py, service/queries/summaries.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Hashable, TypeVar

V = TypeVar("V")


class Kept(Generic[V]):
    """Values by key, the least recently used dropped first once their weights pass `max_weight`.
    A value heavier than a quarter of it is not kept: one huge answer must not flush every other."""

    def __init__(self, max_weight: int, weigh: Callable[[V], int]) -> None:
        self.max_weight = max_weight
        self.weigh = weigh
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()  # handlers run on a thread pool

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        weight = self.weigh(value)
        if weight > self.max_weight // 4:
            return
        with self._lock:
            old = self._values.pop(key, None)
            self._weight += weight - (self.weigh(old) if old is not None else 0)
            self._values[key] = value
            while self._weight > self.max_weight:
                _, evicted = self._values.popitem(last=False)
                self._weight -= self.weigh(evicted)
