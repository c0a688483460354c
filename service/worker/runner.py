"""What `execute_sweep` needs from whatever trains the trials, as two small protocols.

The worker runs sweeps on Ray Tune (`tune_runner.TuneRunner`); tests give it a runner without
Ray, so its control flow (cancel, a lost claim, lost infrastructure, retries) is tested on its own.
"""

from __future__ import annotations

from typing import Callable, Collection, Protocol, Sequence

from service.lifecycle.report import RunReport
from service.lifecycle.runs import Chunk
from service.spec import ResourcesSpec
from service.worker.planning import TrialPlan


class TrialSink(Protocol):
    """Where a runner reports what happens to its trials (the worker's ResultBuffer)."""

    def start_chunk(self, cell_index: int, seeds: Sequence[int]) -> None:
        """A trial started training these runs."""

    def add(self, report: RunReport) -> None:
        """One seed finished."""

    def progress(self, cell_index: int, seeds: Sequence[int], steps: int) -> None:
        """The trial's runs still training have made `steps` steps in all."""

    def fail_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        """The trial's code raised: its unfinished runs end `failed`."""

    def lose_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None:
        """The infrastructure went away under the trial: its unfinished runs are trained again."""

    def tick(self) -> None:
        """Called often while trials run: time to write what is due."""


class TrialRunner(Protocol):
    """Trains trials somewhere. Raises service.errors.ClusterUnavailable when the cluster cannot
    be reached or goes away under the trials; any other exception is the sweep's own problem."""

    def node_resources(self) -> list[dict[str, float]]:
        """CPU and GPU of every live node ({"CPU": .., "GPU": ..}); a trial must fit on one."""

    def run_trials(self, next_trials: Callable[[Collection[Chunk]], Sequence[TrialPlan]], *, sink: TrialSink,
                   should_stop: Callable[[], bool], resources: ResourcesSpec, name: str) -> None:
        """Train the trials `next_trials(in_flight)` plans, asking it again once a trial is done
        (its seeds all reported, or it ended) and every trial planned before is handed out, with
        the chunks still in flight, until it plans none and none is in flight (or until
        `should_stop()`). Results flow into `sink`."""


def waiting_for(resources: ResourcesSpec, nodes: list[dict[str, float]]) -> str | None:
    """Why the cluster cannot place one trial (on one node), or None when it can."""
    needs = {"CPU": resources.cpus_per_trial, "GPU": resources.gpus_per_trial}
    if any(all(node[kind] >= need for kind, need in needs.items()) for node in nodes):
        return None
    for kind, need in needs.items():
        total = sum(node[kind] for node in nodes)
        if need > total:
            return f"waiting for resources: needs {need:g} {kind} per trial, the cluster has {total:g}"
    return (f"waiting for resources: needs {needs['CPU']:g} CPU and {needs['GPU']:g} GPU per trial on one "
            f"node, and no node of the cluster has that much")
