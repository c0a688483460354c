"""/api/v1/runs: one run with the config that reproduces it, and its stored series."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.auth import READ
from service.api.deps import RunId, SessionDep
from service.api.schemas import RunDetailOut, SeriesOut
from service.queries.runs import get_run, series

router = APIRouter(prefix="/api/v1/runs", tags=["runs"], dependencies=[Depends(READ)])


@router.get("/{run_id}", response_model=RunDetailOut)
def get_one_run(*, run_id: RunId, session: SessionDep) -> RunDetailOut:
    return RunDetailOut.build_detail(get_run(session, run_id))


@router.get("/{run_id}/points", response_model=SeriesOut)
def get_points(*, run_id: RunId, session: SessionDep) -> SeriesOut:
    """The run's stored points: every `record_every`-th step and its last (divergence or
    convergence) step, with loss, pre-clip gradient norm and whether the step was clipped."""
    get_run(session, run_id)
    s = series(session, [run_id])[run_id]
    return SeriesOut(run_id=run_id, steps=s.steps, loss=s.loss, grad_norm=s.grad_norm, clipped=s.clipped)
