"""/api/v1/sweeps: submit, read, list, summarize, list runs, cancel."""

from __future__ import annotations

import enum
import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from service.analysis.export import export
from service.analysis.headline import headline
from service.analysis.numbers import count, percent
from service.analysis.planning import seeds_to_settle
from service.analysis.statistics import MIN_TOLERANCE
from service.analysis.summary import anytime_verdict, cell_out_of_reach, stability_frontier
from service.api.auth import READ, Writer, require_owner
from service.api.conditional import etag, not_modified, revalidate
from service.api.deps import CellIndex, Limit, Offset, SessionDep, SettingsDep, SweepId
from service.api.schemas import CellRunSeriesOut, CellSeriesOut, NodeOut, Page, RunOut, SweepCreated, SweepOut
from service.api.search_schemas import SearchOut
from service.api.summary_schemas import CellOut, FrontierOut, StatOut, SummaryOut
from service.db.models import Sweep
from service.lifecycle.adaptive import learning_rates
from service.lifecycle.queue import request_cancel
from service.lifecycle.search import arm_searches
from service.lifecycle.submit import Limits, check_queue_quota, create_sweep
from service.queries.comparisons import stored_comparisons
from service.queries.runs import RunFilter, cell_runs, cell_state, list_runs, series
from service.queries.summaries import cell_summaries
from service.queries.sweeps import (
    get_sweep,
    list_sweeps,
    outcome_counts,
    queue_waits,
    sweep_state,
    sweep_tallies,
)
from service.spec import INT32_MAX, SweepSpec
from service.spec_rates import RateSearch
from service.spec_seeds import adaptive_rule
from service.states import RunOutcome, SweepStatus

router = APIRouter(prefix="/api/v1/sweeps", tags=["sweeps"], dependencies=[Depends(READ)])



@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepCreated,
             responses={429: {"description": "The token submits too often, or has too many sweeps queued."}})
def submit_sweep(*, spec: SweepSpec, session: SessionDep, settings: SettingsDep, request: Request,
                 principal: Writer) -> SweepCreated:
    """Store the sweep and its pending runs; a worker trains them. Answers at once."""
    request.app.state.submit_rate.admit(principal.name)
    check_queue_quota(session, principal.name, settings.max_queued_sweeps_per_token)
    sweep = create_sweep(session, spec, limits=Limits.of(settings), created_by=principal.name)
    session.commit()
    return SweepCreated(id=sweep.id, name=sweep.name, status=sweep.status, runs_total=sweep.runs_total,
                        url=str(request.url_for("sweep_page", sweep_id=sweep.id)))


@router.get("", response_model=Page[SweepOut])
def get_sweeps(*, session: SessionDep, limit: Limit = 50, offset: Offset = 0,
               status: SweepStatus | None = None) -> Page[SweepOut]:
    """Sweeps, newest first."""
    sweeps, total = list_sweeps(session, limit=limit, offset=offset, status=status)
    counts = outcome_counts(session, [s.id for s in sweeps])
    waits = queue_waits(session, sweeps)
    return Page(items=[SweepOut.build(s, counts[s.id], waits.get(s.id)) for s in sweeps], total=total,
                limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepOut)
def get_one_sweep(*, sweep_id: SweepId, session: SessionDep, request: Request) -> SweepOut:
    """The sweep, its progress, and where its runs trained. (Polled by its page every 2 s: the counts
    by outcome and node are kept until another of its runs has an outcome.)"""
    _, finished = sweep_state(session, sweep_id)
    answers = request.app.state.answers
    kept = answers.get(("tallies", sweep_id, finished))
    if kept is not None:
        counts, nodes = json.loads(kept)
    else:
        counts, nodes = sweep_tallies(session, sweep_id)
        answers.put(("tallies", sweep_id, sum(counts.values())), json.dumps([counts, nodes]).encode())
    sweep = get_sweep(session, sweep_id)
    compared = stored_comparisons(session, [sweep_id]).get(sweep_id) if sweep.schedule_id is not None else None
    return SweepOut.build(sweep, counts, queue_waits(session, [sweep]).get(sweep_id),
                          [NodeOut(node=node, device=device, runs=n) for node, device, n in nodes], compared)


@router.get("/{sweep_id}/summary", response_model=SummaryOut)
def get_summary(*, sweep_id: SweepId, session: SessionDep, request: Request,
                tolerance: Annotated[float, Query(ge=MIN_TOLERANCE, lt=1, allow_inf_nan=False, description=(
                    "Divergence-rate tolerance of the stability frontier."))] = 0.05,
                ) -> Response:
    """Per cell: divergence rate with its Wilson 95% interval, the paired comparison with `none`,
    convergence speed; per arm: the highest stable learning rate at `tolerance`."""
    status, finished = sweep_state(session, sweep_id)
    tag = etag("summary", sweep_id, status.value, finished, tolerance)
    if not_modified(request, tag):
        return Response(status_code=304, headers=revalidate(tag))
    answers = request.app.state.answers  # see service/api/answers.py for why this key is enough
    body = answers.get((sweep_id, status, finished, tolerance))
    if body is None:
        cells, finished = cell_summaries(session, sweep_id, request.app.state.cells)
        tag = etag("summary", sweep_id, status.value, finished, tolerance)  # what was read
        sweep = get_sweep(session, sweep_id)
        rule = adaptive_rule(sweep.spec)
        alpha = rule.alpha if rule is not None else None  # adaptive seeds: judged by the anytime-valid test
        frontier = stability_frontier(cells, tolerance, alpha)
        verdicts = [None if alpha is None else anytime_verdict(c, tolerance, alpha) for c in cells]
        running = not status.is_finished()
        settle = [None if running or alpha is not None else seeds_to_settle(c.diverged, c.finished, tolerance)
                  for c in cells]
        # Judged by the spec's own rule, which decided when each cell stopped getting seeds.
        short = [None if rule is None or running else cell_out_of_reach(c, rule.tolerance, rule.alpha, rule.max)
                 for c in cells]
        search = _search(session, sweep)
        said = headline(cells, frontier, tolerance, running=running)
        if said and search is not None and not running:  # how sure, and what it took
            said += (f" Each verdict is wrong with probability at most {percent(search.alpha)}, however often the "
                     f"search looked; it took {count(search.runs)} runs, a grid of the same points "
                     f"{count(search.grid_runs)}.")
        body = SummaryOut(sweep_id=sweep_id, status=status, tolerance=tolerance, headline=said,
                          cells=[CellOut.build(c, running, v, n, r)
                                 for c, v, n, r in zip(cells, verdicts, settle, short)],
                          frontier=[FrontierOut(clipping=f.clipping, clip_method=f.clip_method,
                                                stable_lr=StatOut.of(f.stable_lr))
                                    for f in frontier],
                          search=search).model_dump_json().encode()
        answers.put((sweep_id, status, finished, tolerance), body)
    return Response(body, media_type="application/json", headers=revalidate(tag))


def _search(session: Session, sweep: Sweep) -> SearchOut | None:
    """How a sweep that searched its learning rates got its answer; None for a grid."""
    spec = SweepSpec.model_validate(sweep.spec)
    if not isinstance(spec.learning_rates, RateSearch):
        return None
    return SearchOut.build(spec, arm_searches(spec, learning_rates(session, sweep.id)), sweep.runs_total)


class OutcomeFilter(str, enum.Enum):
    """A run outcome to filter by, or `pending`: a run without one yet."""

    CONVERGED = "converged"
    DIVERGED = "diverged"
    UNCONVERGED = "unconverged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PENDING = "pending"

    def outcome(self) -> RunOutcome | None:
        return None if self is OutcomeFilter.PENDING else RunOutcome(self.value)


@router.get("/{sweep_id}/runs", response_model=Page[RunOut])
def get_runs(*, sweep_id: SweepId, session: SessionDep, limit: Limit = 100, offset: Offset = 0,
             outcome: Annotated[list[OutcomeFilter] | None, Query(
                 description="Repeat for several; `pending` is a run without an outcome yet.")] = None,
             lr: Annotated[float | None, Query(description="One of the sweep's learning rates.")] = None,
             clipping: Annotated[str | None, Query(description="An arm's label, e.g. norm(max_norm=1.0).")] = None,
             cell: Annotated[int | None, Query(ge=0, le=INT32_MAX)] = None) -> Page[RunOut]:
    """Runs in grid order (cell, then seed), filtered by outcome, learning rate, arm or cell."""
    get_sweep(session, sweep_id)
    where = RunFilter(outcomes=[o.outcome() for o in outcome or []], lr=lr, clipping=clipping, cell_index=cell)
    runs, total = list_runs(session, sweep_id, limit=limit, offset=offset, where=where)
    return Page(items=[RunOut.build(r) for r in runs], total=total, limit=limit, offset=offset)


@router.get("/{sweep_id}/cells/{cell_index}/series", response_model=CellSeriesOut)
def get_cell_series(*, sweep_id: SweepId, cell_index: CellIndex, session: SessionDep, request: Request,
                    limit: Limit = 1000, offset: Offset = 0) -> Response:
    """The runs of a cell with their stored points, by seed, a page at a time: the loss and
    gradient-norm curves of its seeds. (What a chart draws of them: …/chart.)"""
    get_sweep(session, sweep_id)
    state = cell_state(session, sweep_id, cell_index)
    if not_modified(request, tag := etag("series", sweep_id, cell_index, *state, limit, offset)):
        return Response(status_code=304, headers=revalidate(tag))
    cell, runs = cell_runs(session, sweep_id, cell_index)
    state = (len(runs), sum(r.outcome is not None for r in runs))  # what was read
    tag = etag("series", sweep_id, cell_index, *state, limit, offset)
    page = runs[offset:offset + limit]
    points = series(session, [r.id for r in page])
    body = CellSeriesOut(
        cell_index=cell_index, lr=cell.lr, clipping=cell.clip_label, clip_method=cell.clip_method,
        clip_params=cell.clip_params, total=len(runs), limit=limit, offset=offset,
        runs=[CellRunSeriesOut(run_id=r.id, seed=r.seed, outcome=r.outcome, trigger=r.trigger,
                               diverged_at_step=r.diverged_at_step, converged_at_step=r.converged_at_step,
                               steps=points[r.id].steps, loss=points[r.id].loss,
                               grad_norm=points[r.id].grad_norm, clipped=points[r.id].clipped)
              for r in page])
    return Response(body.model_dump_json().encode(), media_type="application/json", headers=revalidate(tag))


@router.get("/{sweep_id}/export", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}},
                             "description": "The file, streamed."}})
def export_sweep(*, sweep_id: SweepId, session: SessionDep,
                 format: Literal["csv", "parquet"] = "csv",
                 include: Annotated[Literal["runs", "points"], Query(
                     description="`runs`: one row per run; `points`: one row per stored point.")] = "runs",
                 ) -> StreamingResponse:
    """The sweep's runs, or its points, as a file (streamed: a sweep of a million points is fine)."""
    get_sweep(session, sweep_id)
    name = f"sweep-{sweep_id}-{include}.{format}"
    body = export(session, sweep_id, points=include == "points", file_format=format)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/vnd.apache.parquet"
    return StreamingResponse(body, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'})


@router.post("/{sweep_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=SweepOut,
             responses={409: {"description": "The sweep already ended."}})
def cancel_sweep(*, sweep_id: SweepId, session: SessionDep, settings: SettingsDep,
                 principal: Writer) -> SweepOut:
    """Cancel a sweep. Queued: it ends `cancelled` now. Running: its worker stops the trials within
    seconds and ends it `cancelled` (status stays `running` until then, with cancel_requested_at
    set). Runs that finished keep their outcomes; the others end `cancelled`. A write token cancels
    the sweeps it submitted; an admin token any."""
    sweep = get_sweep(session, sweep_id)
    require_owner(principal, sweep.created_by, f"sweep {sweep_id}", "cancel")
    request_cancel(session, sweep, heartbeat_timeout=settings.heartbeat_timeout_seconds)
    session.commit()
    session.refresh(sweep)
    return SweepOut.build(sweep, outcome_counts(session, [sweep_id])[sweep_id])
