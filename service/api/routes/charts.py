"""/api/v1/sweeps/{id}/cells/{cell}/chart: what the dashboard draws of a cell's seeds, at any number
of seeds: quantile bands, every diverged curve and a sample of the others, thinned to the chart's
width (service/analysis/charts.py). Every point stays reachable through …/series and the export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from service.analysis.charts import band, sample, thin
from service.api.auth import READ
from service.api.chart_schemas import BandOut, CellChartOut, ChartRunOut, CurveOut
from service.api.conditional import etag, not_modified, revalidate
from service.api.deps import CellIndex, SessionDep, SweepId
from service.db.rows import RunRow
from service.queries.runs import cell_runs, cell_state, series
from service.queries.sweeps import get_sweep
from service.states import RunOutcome

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"], dependencies=[Depends(READ)])


@router.get("/{sweep_id}/cells/{cell_index}/chart", response_model=CellChartOut)
def get_cell_chart(*, sweep_id: SweepId, cell_index: CellIndex, session: SessionDep, request: Request,
                   width: Annotated[int, Query(ge=50, le=4000, description="The chart's width in points.")] = 600,
                   others: Annotated[int, Query(ge=0, le=500, description=(
                       "At most this many curves of seeds that did not diverge."))] = 40) -> Response:
    """A cell's seeds as a chart shows them: loss and pre-clip norm bands (p10, p50, p90 over the
    seeds, step by step), every diverged seed's curve and an even sample of the others, each thinned
    to the width with its extremes kept; and every run, without its points."""
    get_sweep(session, sweep_id)
    state = cell_state(session, sweep_id, cell_index)
    if not_modified(request, tag := etag("chart", sweep_id, cell_index, *state, width, others)):
        return Response(status_code=304, headers=revalidate(tag))
    answers = request.app.state.answers  # kept while the cell's runs are the same
    body = answers.get(("chart", sweep_id, cell_index, *state, width, others))
    if body is None:
        cell, runs = cell_runs(session, sweep_id, cell_index)
        state = (len(runs), sum(r.outcome is not None for r in runs))  # what was read
        tag = etag("chart", sweep_id, cell_index, *state, width, others)
        points = series(session, [r.id for r in runs])
        rest = [r for r in runs if r.outcome is not None and r.outcome is not RunOutcome.DIVERGED]
        shown = [r for r in runs if r.outcome is RunOutcome.DIVERGED] + [rest[i] for i in sample(len(rest), others)]
        described = {r.id: _run(r) for r in runs}
        curves = []
        for r in shown:
            p = points[r.id]
            keep = thin(p.steps, p.loss, p.grad_norm, width=width)
            curves.append(CurveOut.model_construct(**dict(described[r.id]), steps=[p.steps[i] for i in keep],
                                                   loss=[p.loss[i] for i in keep],
                                                   grad_norm=[p.grad_norm[i] for i in keep]))
        body = CellChartOut(
            cell_index=cell_index, lr=cell.lr, clipping=cell.clip_label, clip_method=cell.clip_method,
            clip_params=cell.clip_params, width=width, runs=list(described.values()),
            loss=BandOut.of(band([(points[r.id].steps, points[r.id].loss) for r in runs], width)),
            grad_norm=BandOut.of(band([(points[r.id].steps, points[r.id].grad_norm) for r in runs], width)),
            curves=curves, others=len(rest)).model_dump_json().encode()
        answers.put(("chart", sweep_id, cell_index, *state, width, others), body)
    return Response(body, media_type="application/json", headers=revalidate(tag))


def _run(r: RunRow) -> ChartRunOut:
    # Built from typed stored rows, thousands per chart: pydantic's validation of each cost more
    # than the rest of the chart (and its garbage a collection pause now and then).
    return ChartRunOut.model_construct(run_id=r.id, seed=r.seed, outcome=r.outcome, trigger=r.trigger,
                                       diverged_at_step=r.diverged_at_step, converged_at_step=r.converged_at_step)
