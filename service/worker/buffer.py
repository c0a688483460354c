"""The worker's result buffer: what a sweep's trials report, written in batches.

A batch is written when its oldest entry has waited `flush_seconds`, when a trial starts or
fails, and before the worker plans more trials, in one transaction. While the database is away
the buffer keeps what it has and tries again; nothing is lost.

The trials' progress reports (the steps their unfinished runs have made) go into the same batch:
the sweep's `live_steps` is written with the results of the same moment, so a run moves from
"live" to "done" in one commit and the progress a reader sees does not jump back.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from service.lifecycle.lease import SweepLease
from service.lifecycle.queue import record_live_steps
from service.lifecycle.report import RunReport
from service.lifecycle.runs import Chunk, count_attempts, fail_runs, store_results

log = logging.getLogger("clipsweep.worker")


class ResultBuffer:
    """A TrialSink for one leased sweep. Besides results it keeps the attempts to count (a run
    spends one when a trial starts it) and the chunks lost to infrastructure."""

    def __init__(self, lease: SweepLease, flush_seconds: float) -> None:
        self.lease = lease
        self.flush_seconds = flush_seconds
        self.results: list[RunReport] = []
        self.failures: list[tuple[int, Sequence[int], str]] = []  # chunks whose code raised
        self.to_count: list[Chunk] = []  # chunks whose trial started, attempt not yet written
        self.oldest: float | None = None
        self.lost: list[str] = []  # errors of trials lost to infrastructure
        # Chunks started and not yet ended, nor lost: a clean stop gives their attempt back (a
        # lost chunk's attempt stands, so restarts cannot reset the retry budget).
        self.started: set[Chunk] = set()
        # Progress of the chunks training now: steps made by their unfinished runs, as last
        # reported less the steps of the runs that finished since; and each run's chunk.
        self.live: dict[Chunk, int] = {}
        self.left: dict[Chunk, int] = {}  # runs of the chunk still without a result
        self.chunk_of: dict[tuple[int, int], Chunk] = {}
        self.live_dirty = False

    def _waiting(self) -> None:
        self.oldest = self.oldest or time.monotonic()

    def add(self, report: RunReport) -> None:
        self.results.append(report)
        self._ended(report.cell_index, report.seed, report.run.steps_done)
        self._waiting()
        self.tick()

    def _ended(self, cell_index: int, seed: int, steps: int) -> None:
        """One run of a live chunk has its outcome: the chunk ends with its last."""
        chunk = self.chunk_of.pop((cell_index, seed), None)
        if chunk in self.live:
            self.left[chunk] -= 1
            if self.left[chunk] <= 0:
                self._end_live(chunk)
            else:
                self.live[chunk] = max(0, self.live[chunk] - steps)
                self.live_dirty = True

    def progress(self, cell_index: int, seeds: Sequence[int], steps: int) -> None:
        """A trial's runs still training have made `steps` steps in all."""
        chunk = (cell_index, tuple(seeds))
        if chunk in self.live:
            self.live[chunk] = steps
            self.live_dirty = True
            self._waiting()
        self.tick()

    def start_chunk(self, cell_index: int, seeds: Sequence[int]) -> None:
        chunk = (cell_index, tuple(seeds))
        self.to_count.append(chunk)
        self.started.add(chunk)
        self.live[chunk], self.left[chunk] = 0, len(chunk[1])
        self.chunk_of.update({(cell_index, seed): chunk for seed in chunk[1]})
        # Written at once, not with the next batch: a worker killed mid-trial (the process, or
        # the Ray head under it) has then spent the attempt, so a chunk that kills its worker
        # is not retried forever. More trials are planned as soon as one is done, so the next
        # batch would often be this trial's own results.
        self._waiting()  # should the database be away, the next tick tries again
        self._try_flush()

    def _end_live(self, chunk: Chunk) -> None:
        self.started.discard(chunk)
        if self.live.pop(chunk, None) is not None:
            self.left.pop(chunk, None)
            for seed in chunk[1]:
                self.chunk_of.pop((chunk[0], seed), None)
            self.live_dirty = True

    def fail_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        """These runs end `failed`: a whole trial's, or one seed's whose report was malformed (its
        trial goes on, one run fewer to wait for)."""
        self.failures.append((cell_index, seeds, error))
        for seed in seeds:
            self._ended(cell_index, seed, 0)
        self._try_flush()

    def lose_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        log.warning("sweep %s: a trial of cell %s was lost (%s); its unfinished runs will be retried",
                    self.lease.sweep_id, cell_index, error)
        self.lost.append(error)
        chunk = (cell_index, tuple(seeds))
        started = chunk in self.started
        self._end_live(chunk)
        if not started:
            # Lost before it started (its actor could not be created): that still spends an
            # attempt, or a cluster that never places it would be retried forever.
            self.to_count.append(chunk)
            self._waiting()

    def tick(self) -> None:
        if self.oldest is not None and time.monotonic() - self.oldest >= self.flush_seconds:
            self._try_flush()

    def _try_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # keep the buffer; the next tick or the final flush writes it
            log.exception("writing results of sweep %s failed; will retry", self.lease.sweep_id)

    def flush(self) -> None:
        """Write what is buffered in one transaction. Results go first: the runs a failed chunk
        reported before it raised keep their outcomes, only the rest end `failed`."""
        if self.lease.lost:
            # Another worker trains these runs now: results are idempotent and still go in, but
            # attempts, failures and progress are its to write.
            self.to_count, self.failures, self.live_dirty = [], [], False
        if not self.results and not self.failures and not self.to_count and not self.live_dirty:
            return
        sweep_id = self.lease.sweep_id
        with self.lease.session() as session:
            count_attempts(session, sweep_id, self.to_count)
            store_results(session, sweep_id, self.results)
            for cell_index, seeds, error in self.failures:
                fail_runs(session, sweep_id, cell_index, seeds, error)
            if self.live_dirty:
                record_live_steps(session, sweep_id, sum(self.live.values()))
        self.results, self.failures, self.to_count, self.oldest = [], [], [], None
        self.live_dirty = False
