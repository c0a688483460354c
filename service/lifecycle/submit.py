"""Submitting a sweep: the sweep, its cells and all its pending runs, stored in one transaction."""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from service.clock import now
from service.db.models import Cell, Run, Sweep
from service.errors import SpecError
from service.grid import cells
from service.spec import SweepSpec, resolve_spec
from service.states import SweepStatus


def create_sweep(session: Session, spec: SweepSpec, *, max_runs: int) -> Sweep:
    """Store a sweep queued for a worker, its grid of cells, and one pending run per cell × seed.
    The caller commits; a refused spec (SpecError) stores nothing."""
    spec = resolve_spec(spec)
    seeds = spec.seed_list
    grid = cells(spec)
    total = len(grid) * len(seeds)
    if total > max_runs:
        raise SpecError([{
            "loc": [], "type": "value_error",
            "msg": (f"the grid has {total} runs ({len(spec.learning_rates)} learning rates × "
                    f"{len(spec.clipping)} arms × {len(seeds)} seeds), more than the limit of "
                    f"{max_runs}; submit fewer, or raise CLIPSWEEP_MAX_RUNS_PER_SWEEP"),
        }])
    sweep = Sweep(name=spec.name or spec.task.name, task=spec.task.name, spec=spec.model_dump(mode="json"),
                  status=SweepStatus.QUEUED, runs_total=total, created_at=now())
    session.add(sweep)
    session.flush()
    session.execute(insert(Cell), [
        {"sweep_id": sweep.id, "cell_index": cell.index, "lr": cell.lr, "clip_method": cell.clipping.method,
         "clip_params": dict(cell.clipping.params), "clip_label": cell.label, "config": cell.config.to_dict(),
         "config_hash": cell.config.content_hash()}
        for cell in grid
    ])
    session.execute(insert(Run), [
        {"sweep_id": sweep.id, "cell_index": cell.index, "seed": seed} for cell in grid for seed in seeds
    ])
    return sweep
