"""Reading sweeps: one, a page of them, their progress, their cells, the runs a summary needs."""

from __future__ import annotations

from bisect import bisect_left

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.analysis.numbers import duration
from service.analysis.progress import StepProgress, step_progress
from service.clock import now
from service.db.models import Cell, Run, Sweep
from service.db.rows import OutcomeRow, read_runs, select_runs
from service.errors import SweepNotFound
from service.spec import INT32_MAX
from service.states import RunOutcome, SweepStatus


def get_sweep(session: Session, sweep_id: int) -> Sweep:
    # An id the database cannot even hold is no sweep's (and would overflow its driver).
    sweep = session.get(Sweep, sweep_id) if 0 <= sweep_id <= INT32_MAX else None
    if sweep is None:
        raise SweepNotFound(sweep_id)
    return sweep


def sweep_state(session: Session, sweep_id: int) -> tuple[SweepStatus, int]:
    """The sweep's status and how many of its runs have an outcome, in one query: what a kept
    summary is keyed by (service/api/answers.py). Its cells keep the counts (migration 0013)."""
    finished = select(func.coalesce(func.sum(Cell.done_count), 0)).where(Cell.sweep_id == Sweep.id).scalar_subquery()
    row = (session.execute(select(Sweep.status, finished).where(Sweep.id == sweep_id)).one_or_none()
           if 0 <= sweep_id <= INT32_MAX else None)
    if row is None:
        raise SweepNotFound(sweep_id)
    return row[0], row[1]


def list_sweeps(session: Session, *, limit: int, offset: int,
                status: SweepStatus | None = None) -> tuple[list[Sweep], int]:
    """A page of sweeps, newest first, and the total count (in the same query, the list being
    what the dashboard polls)."""
    where = [Sweep.status == status] if status is not None else []
    rows = session.execute(select(Sweep, func.count().over()).where(*where)
                           .order_by(Sweep.id.desc()).limit(limit).offset(offset)).all()
    if rows:
        return [sweep for sweep, _ in rows], rows[0][1]
    return [], session.scalar(select(func.count()).select_from(Sweep).where(*where)) or 0


def outcome_counts(session: Session, sweep_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per sweep, how many runs ended with each outcome (outcomes with none are 0)."""
    counts = {sid: {o.value: 0 for o in RunOutcome} for sid in sweep_ids}
    rows = session.execute(
        select(Run.sweep_id, Run.outcome, func.count())
        .where(Run.sweep_id.in_(sweep_ids), Run.outcome.is_not(None))
        .group_by(Run.sweep_id, Run.outcome)
    )
    for sweep_id, outcome, n in rows:
        counts[sweep_id][outcome.value] = n
    return counts


def sweep_tallies(session: Session, sweep_id: int) -> tuple[dict[str, int], list[tuple[str | None, str, int]]]:
    """The sweep's runs by outcome (outcomes with none are 0), and (node, device, runs) for each node
    and device its runs trained on, from one statement so that the two agree: a reader may keep
    them for as long as the sweep's count of runs with an outcome stays what they add up to (a
    run's outcome, node and device are written once, together)."""
    counts = {o.value: 0 for o in RunOutcome}
    nodes: dict[tuple[str | None, str], int] = {}
    for outcome, node, device, n in session.execute(
            select(Run.outcome, Run.node, Run.device, func.count())
            .where(Run.sweep_id == sweep_id, Run.outcome.is_not(None)).group_by(Run.outcome, Run.node, Run.device)):
        counts[outcome.value] += n
        if device is not None:
            nodes[(node, device)] = nodes.get((node, device), 0) + n
    ordered = sorted(nodes.items(), key=lambda item: (item[0][0] or "", item[0][1]))
    return counts, [(node, device, n) for (node, device), n in ordered]


def sweep_cells(session: Session, sweep_id: int) -> list[Cell]:
    """The sweep's stored grid, in cell order."""
    return list(session.scalars(select(Cell).where(Cell.sweep_id == sweep_id).order_by(Cell.cell_index)))


def summary_rows(session: Session, sweep_id: int) -> list[OutcomeRow]:
    """What every run of the sweep ended with, one row each (never its points: the summary stays
    fast at a million of them)."""
    return read_runs(session, select_runs(Run.sweep_id == sweep_id, row_type=OutcomeRow), OutcomeRow)


def sweep_step_progress(sweep: Sweep, runs_done: int) -> StepProgress:
    """A stored sweep's progress in steps now (`runs_done`: its runs with an outcome)."""
    return step_progress(runs_total=sweep.runs_total, runs_done=runs_done,
                         max_steps=int(sweep.spec["budget"]["max_steps"]), live_steps=sweep.live_steps,
                         started_at=sweep.started_at, running=sweep.status is SweepStatus.RUNNING, at=now())


def queue_waits(session: Session, sweeps: list[Sweep]) -> dict[int, str]:
    """Why each queued sweep of `sweeps` waits, where it stored no reason of its own (such as
    resources): the sweep a worker trains ahead of it, about how long that one has left at its
    pace so far, and how many queued sweeps come first (the queue is first come, first served)."""
    waiting = sorted(s.id for s in sweeps if s.status is SweepStatus.QUEUED and s.status_detail is None)
    if not waiting:
        return {}
    # Bounded by the page, not the queue: the queued sweeps before the page counted, those
    # among it listed.
    queued = Sweep.status == SweepStatus.QUEUED
    earlier, head = session.execute(select(func.count(), func.min(Sweep.id)).where(queued, Sweep.id < waiting[0])).one()
    among = list(session.scalars(select(Sweep.id).where(queued, Sweep.id >= waiting[0], Sweep.id < waiting[-1])
                                 .order_by(Sweep.id)))
    head = head if earlier else (among[0] if among else None)
    running = list(session.scalars(select(Sweep).where(Sweep.status == SweepStatus.RUNNING)))
    done = outcome_counts(session, [r.id for r in running])
    left = {r.id: sweep_step_progress(r, sum(done[r.id].values())).eta_seconds for r in running}
    # With several workers, the first to free one is the sweep with the least time left.
    first = min(left, key=lambda i: (left[i] is None, left[i] or 0.0), default=None)
    waits = {}
    for sweep_id in waiting:
        ahead = earlier + bisect_left(among, sweep_id)
        if first is not None:
            pace = (f"about {duration(left[first])} left" if left[first] is not None
                    else "nothing of it trained yet to estimate from")
            text = f"queued behind sweep {first}, {pace}"
            if ahead:
                text += f"; {ahead} queued sweep{'s' if ahead > 1 else ''} ahead"
        elif ahead:
            text = f"queued behind sweep {head}" + (f" and {ahead - 1} more" if ahead > 1 else "")
        else:
            text = "next in the queue, waiting for a worker"
        waits[sweep_id] = text
    return waits
