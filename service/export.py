"""A sweep's runs, or its points, as a CSV or Parquet file, streamed in bounded memory.

Runs: one row per run with every stored field. Points: one row per stored point, with the run's
identifying columns (run_id, cell, lr, clipping, seed, outcome) so the file stands on its own;
join on run_id with the runs file for the rest. NaN and infinities are written as they are
(CSV: nan, inf, -inf; Parquet: IEEE values); an empty CSV field or a Parquet null is a value that
was never computed.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import Run, RunPoint, restore_nan

BATCH = 10_000

RUN_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.int64(), "sweep_id": pa.int64(), "cell_index": pa.int32(), "lr": pa.float64(),
    "clipping": pa.string(), "clip_method": pa.string(), "seed": pa.int64(), "outcome": pa.string(),
    "trigger": pa.string(), "diverged_at_step": pa.int64(), "converged_at_step": pa.int64(),
    "steps_done": pa.int64(), "initial_loss": pa.float64(), "final_loss": pa.float64(), "min_loss": pa.float64(),
    "final_eval_loss": pa.float64(), "clipped_steps": pa.int64(), "max_grad_norm": pa.float64(),
    "divergence_grad_norm": pa.float64(), "device": pa.string(), "node": pa.string(), "attempts": pa.int32(),
    "error": pa.string(),
}
POINT_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.int64(), "cell_index": pa.int32(), "lr": pa.float64(), "clipping": pa.string(),
    "seed": pa.int64(), "outcome": pa.string(), "step": pa.int64(), "loss": pa.float64(),
    "grad_norm": pa.float64(), "clipped": pa.bool_(),
}


def _runs_query(sweep_id: int) -> tuple[Select[Any], Callable[[Any], tuple[Any, ...]]]:
    query = (select(Run.id, Run.sweep_id, Run.cell_index, Run.lr, Run.clip_label, Run.clip_method, Run.seed,
                    Run.outcome, Run.trigger, Run.diverged_at_step, Run.converged_at_step, Run.steps_done,
                    Run.initial_loss, Run.final_loss, Run.min_loss, Run.final_eval_loss, Run.clipped_steps,
                    Run.max_grad_norm, Run.divergence_grad_norm, Run.device, Run.node, Run.attempts, Run.error)
             .where(Run.sweep_id == sweep_id).order_by(Run.cell_index, Run.seed))

    def row(r: Any) -> tuple[Any, ...]:
        # NaN is stored as NULL; the trigger says which NULLs were NaN (service.db.models).
        return (*r[:13], restore_nan(r.final_loss, r.trigger, "nonfinite_loss"), *r[14:17],
                restore_nan(r.max_grad_norm, r.trigger, "nonfinite_grad"),
                restore_nan(r.divergence_grad_norm, r.trigger, "nonfinite_grad"), *r[19:])

    return query, row


def _points_query(sweep_id: int) -> tuple[Select[Any], Callable[[Any], tuple[Any, ...]]]:
    query = (select(Run.id, Run.cell_index, Run.lr, Run.clip_label, Run.seed, Run.outcome, RunPoint.step,
                    RunPoint.loss, RunPoint.grad_norm, RunPoint.clipped, Run.trigger, Run.diverged_at_step)
             .join(RunPoint, RunPoint.run_id == Run.id)
             .where(Run.sweep_id == sweep_id).order_by(Run.cell_index, Run.seed, RunPoint.step))

    def row(r: Any) -> tuple[Any, ...]:
        # A loss is always computed, so NULL was NaN; a NULL norm was NaN only at a nonfinite_grad
        # run's last step (its divergence step), elsewhere it was never computed.
        nan_norm = r.trigger == "nonfinite_grad" and r.step == r.diverged_at_step
        return (*r[:7], math.nan if r.loss is None else r.loss,
                math.nan if r.grad_norm is None and nan_norm else r.grad_norm, r.clipped)

    return query, row


def _batches(factory: sessionmaker[Session], points: bool, sweep_id: int) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in batches, from the database's cursor (server-side on PostgreSQL)."""
    query, row = (_points_query if points else _runs_query)(sweep_id)
    with factory() as session:
        result = session.execute(query.execution_options(yield_per=BATCH))
        for partition in result.partitions():
            yield [row(r) for r in partition]


def columns(points: bool) -> dict[str, pa.DataType]:
    return POINT_COLUMNS if points else RUN_COLUMNS


def stream_csv(factory: sessionmaker[Session], sweep_id: int, *, points: bool) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(points))
    for batch in _batches(factory, points, sweep_id):
        writer.writerows(batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def stream_parquet(factory: sessionmaker[Session], sweep_id: int, *, points: bool,
                   chunk: int = 1 << 20) -> Iterator[bytes]:
    """A Parquet file needs its footer written last, so it is built in a temporary file (one row
    group per batch, memory stays bounded) and then streamed."""
    schema = pa.schema(list(columns(points).items()))
    with tempfile.TemporaryFile() as spool:
        with pq.ParquetWriter(spool, schema, compression="zstd") as writer:
            for batch in _batches(factory, points, sweep_id):
                arrays = [pa.array(values, type=field.type) for values, field in zip(zip(*batch), schema)]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        spool.seek(0)
        while data := spool.read(chunk):
            yield data
