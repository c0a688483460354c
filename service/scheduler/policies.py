"""What a schedule does when a fire time comes, and what each fire time came to."""

from __future__ import annotations

from service.states import _State


class Concurrency(_State):
    """A fire time while an earlier sweep of the schedule is still queued or running."""

    SKIP = "skip"  # record the fire as skipped (the default)
    QUEUE = "queue"  # make the sweep anyway; it waits in the queue
    REPLACE = "replace"  # cancel the earlier sweep, then make the new one


class CatchUp(_State):
    """Fire times that passed while no scheduler ran."""

    LATEST = "latest"  # one sweep for the most recent, if within the starting deadline (the default)
    NONE = "none"  # none: they are recorded as missed
    ALL = "all"  # one sweep for each, the most recent MAX_CATCH_UP of them


class SeedPolicy(_State):
    SAME = "same"  # the spec's seeds every time: a change in outcome is a change in code or environment
    FRESH = "fresh"  # a new block of as many seeds each fire, so evidence can be pooled across nights


class FireOutcome(_State):
    FIRED = "fired"  # a sweep was made for it
    MANUAL = "manual"  # a sweep was made for a manual trigger
    SKIPPED = "skipped"  # an earlier sweep was still queued or running (concurrency skip)
    MISSED = "missed"  # it passed while no scheduler ran, and the catch-up policy left it
    REFUSED = "refused"  # its sweep would break a limit set since, or run out of fresh seeds


# Catching up never makes more sweeps than this at once, however long the scheduler was away.
MAX_CATCH_UP = 10
# A fire time found this late is still on time (no catch-up involved): the scheduler sleeps at
# most 60 s between ticks, and a tick may take a while.
ON_TIME_SECONDS = 120
