"""Encoded answers kept while nothing they were computed from can change.

A sweep's summary is a function of its status and its runs' outcomes, and a run's outcome is
written once (every write to it is guarded by `outcome IS NULL`), so a summary keyed by the
sweep, its status, how many of its runs have an outcome and the tolerance is the same answer for
as long as that key holds. The dashboard polls the summary of the sweeps people watch; with this
cache the polls that find nothing new cost one small query (queries.sweeps.sweep_state) instead
of reading and bootstrapping every run. The same holds, with keys of their own, for a cell's chart
(its counts of runs and runs with an outcome), a sweep's counts by outcome and node (its runs with
an outcome) and a comparison of two sweeps (routes/alerts.py): `app.state.answers` keeps them all.
"""

from __future__ import annotations

from service.kept import Kept


class AnswerCache(Kept[bytes]):
    """Encoded answers by key, bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, len)
