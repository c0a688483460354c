"""The typed hand-off from the trainers to the service: one seed's report, checked where it enters.

The Ray adapter (trainers/ray_adapter.py) reports each finished seed as plain data. `RunReport`
is its contract: every field required, no field unknown, each of its type. A report that does not
fit (a trainer of another version, say) is refused where it arrives, and its run ends `failed`
with the reason; a field never silently becomes NULL. A test holds `TrainedRun`'s fields to
trainers.RunResult's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from service.errors import ReportError
from trainers.detection import Trigger
from trainers.loop import Outcome


class _Exact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainedRun(_Exact):
    """A trainers.RunResult as reported: the outcome, its numbers, the kept points."""

    outcome: Outcome
    steps_done: int
    trigger: Trigger | None
    diverged_at_step: int | None
    converged_at_step: int | None
    initial_loss: float | None
    final_loss: float | None
    min_loss: float | None
    final_eval_loss: float | None
    clipped_steps: int
    max_grad_norm: float | None
    norm_histogram: dict[int, int]
    divergence_grad_norm: float | None
    points: list[tuple[int, float, float | None, bool]]  # step, loss, pre-clip norm, clipped


class RunReport(_Exact):
    """One seed of one cell, trained: what it ended with, and where it trained."""

    cell_index: int
    seed: int
    device: str | None
    node: str | None
    run: TrainedRun


class ProgressReport(_Exact):
    """How far a trial's runs still training are: `steps` made by them in all."""

    cell_index: int
    seeds: list[int]
    steps: int


def parse_report(payload: Any) -> RunReport:
    """The report in `payload`, or ReportError saying which fields are missing, extra or wrong."""
    return _parse(RunReport, payload)


def parse_progress(payload: Any) -> ProgressReport:
    """The progress report in `payload`, or ReportError as parse_report says."""
    return _parse(ProgressReport, payload)


def _parse(model: type[_Exact], payload: Any) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
        raise ReportError(f"the trainer's report does not fit this service ({exc.error_count()} "
                          f"problem(s)): {problems}") from None
