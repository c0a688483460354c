"""/api/v1/sweeps: submit, read, list, summarize, list runs, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from service.api.deps import SessionDep, SettingsDep
from service.api.schemas import CellOut, FrontierOut, Page, RunOut, StatOut, SummaryOut, SweepCreated, SweepOut
from service.db.models import SweepStatus
from service.queue import request_cancel
from service.spec import SweepSpec
from service.sweeps import (
    create_sweep,
    get_sweep,
    list_runs,
    list_sweeps,
    outcome_counts,
    stability_frontier,
    summarize_cells,
)

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"])

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepCreated)
def submit_sweep(*, spec: SweepSpec, session: SessionDep, settings: SettingsDep,
                 request: Request) -> SweepCreated:
    """Store the sweep and its pending runs; a worker trains them. Answers at once."""
    sweep = create_sweep(session, spec, max_runs=settings.max_runs_per_sweep)
    session.commit()
    return SweepCreated(id=sweep.id, name=sweep.name, status=sweep.status, runs_total=sweep.runs_total,
                        url=str(request.url_for("sweep_page", sweep_id=sweep.id)))


@router.get("", response_model=Page[SweepOut])
def get_sweeps(*, session: SessionDep, limit: Limit = 50, offset: Offset = 0,
               status: SweepStatus | None = None) -> Page[SweepOut]:
    """Sweeps, newest first."""
    sweeps, total = list_sweeps(session, limit=limit, offset=offset, status=status)
    counts = outcome_counts(session, [s.id for s in sweeps])
    return Page(items=[SweepOut.build(s, counts[s.id]) for s in sweeps], total=total,
                limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepOut)
def get_one_sweep(*, sweep_id: int, session: SessionDep) -> SweepOut:
    sweep = get_sweep(session, sweep_id)
    return SweepOut.build(sweep, outcome_counts(session, [sweep_id])[sweep_id])


@router.get("/{sweep_id}/summary", response_model=SummaryOut)
def get_summary(*, sweep_id: int, session: SessionDep,
                tolerance: Annotated[float, Query(gt=0, lt=1, description="Divergence-rate tolerance of "
                                                                          "the stability frontier.")] = 0.05,
                ) -> SummaryOut:
    """Per cell: divergence rate with its Wilson 95% interval, the paired comparison with `none`,
    convergence speed; per arm: the highest stable learning rate at `tolerance`."""
    sweep = get_sweep(session, sweep_id)
    cells = summarize_cells(session, sweep_id)
    return SummaryOut(sweep_id=sweep.id, status=sweep.status, tolerance=tolerance,
                      cells=[CellOut.build(c) for c in cells],
                      frontier=[FrontierOut(clipping=f.clipping, clip_method=f.clip_method,
                                            stable_lr=StatOut.of(f.stable_lr))
                                for f in stability_frontier(cells, tolerance)])


@router.get("/{sweep_id}/runs", response_model=Page[RunOut])
def get_runs(*, sweep_id: int, session: SessionDep, limit: Limit = 100,
             offset: Offset = 0) -> Page[RunOut]:
    """Runs in grid order (cell, then seed)."""
    get_sweep(session, sweep_id)
    runs, total = list_runs(session, sweep_id, limit=limit, offset=offset)
    return Page(items=[RunOut.build(r) for r in runs], total=total, limit=limit, offset=offset)


@router.post("/{sweep_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=SweepOut,
             responses={409: {"description": "The sweep already ended."}})
def cancel_sweep(*, sweep_id: int, session: SessionDep, settings: SettingsDep) -> SweepOut:
    """Cancel a sweep. Queued: it ends `cancelled` now. Running: its worker stops the trials within
    seconds and ends it `cancelled` (status stays `running` until then, with cancel_requested_at
    set). Runs that finished keep their outcomes; the others end `cancelled`."""
    sweep = get_sweep(session, sweep_id)
    request_cancel(session, sweep, heartbeat_timeout=settings.heartbeat_timeout_seconds)
    session.commit()
    session.refresh(sweep)
    return SweepOut.build(sweep, outcome_counts(session, [sweep_id])[sweep_id])
