"""How far a sweep is, counted in steps, and when it should end at its pace so far.

Runs mostly end at the end of their budget, so counting finished runs barely moves until the
end. Steps do: a finished run (whatever its outcome) counts its whole budget, since nothing of it
is left to train, and the runs still training count the steps their worker last wrote
(`sweeps.live_steps`). The pace is the steps done over the time since the sweep started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StepProgress:
    steps_total: int
    steps_done: int
    steps_per_second: float | None
    eta_seconds: float | None


def step_progress(*, runs_total: int, runs_done: int, max_steps: int, live_steps: int | None,
                  started_at: datetime | None, running: bool, at: datetime) -> StepProgress:
    """`runs_done`: runs with an outcome; `live_steps` counts only while `running`."""
    total = runs_total * max_steps
    done = min(total, runs_done * max_steps + ((live_steps or 0) if running else 0))
    elapsed = (at - started_at).total_seconds() if started_at is not None else 0.0
    rate = done / elapsed if running and done and elapsed > 0 else None
    return StepProgress(steps_total=total, steps_done=done, steps_per_second=rate,
                        eta_seconds=(total - done) / rate if rate else None)

