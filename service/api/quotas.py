"""How often one token may submit: a sliding window per principal, in this API process (with
several API processes each keeps its own)."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque

from service.errors import TooManyRequests

WINDOW_SECONDS = 60.0


class SubmitRate:
    """At most `per_minute` submits in any 60 s, per principal (None: auth off, one shared window)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str | None, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()  # handlers run in a thread pool

    def admit(self, who: str | None) -> None:
        moment = time.monotonic()
        with self._lock:
            seen = self._seen[who]
            while seen and moment - seen[0] >= WINDOW_SECONDS:
                seen.popleft()
            if len(seen) >= self.per_minute:
                wait = math.ceil(WINDOW_SECONDS - (moment - seen[0]))
                raise TooManyRequests(
                    f"{'token ' + repr(who) if who else 'this service'} submitted {len(seen)} sweeps in the last "
                    f"minute, the most CLIPSWEEP_SUBMIT_RATE_PER_MINUTE allows; try again in {wait} s", wait)
            seen.append(moment)
