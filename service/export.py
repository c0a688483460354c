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
import tempfile
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import NAN_TRIGGERS, Run, RunPoint, restore_nan, restore_point_nan

BATCH = 10_000

# Each exported run column: the model column it reads and its Parquet type, in file order.
_RUN_FIELDS: dict[str, tuple[Any, pa.DataType]] = {
    "run_id": (Run.id, pa.int64()), "sweep_id": (Run.sweep_id, pa.int64()), "cell_index": (Run.cell_index, pa.int32()),
    "lr": (Run.lr, pa.float64()), "clipping": (Run.clip_label, pa.string()),
    "clip_method": (Run.clip_method, pa.string()), "seed": (Run.seed, pa.int64()),
    "outcome": (Run.outcome, pa.string()), "trigger": (Run.trigger, pa.string()),
    "diverged_at_step": (Run.diverged_at_step, pa.int64()), "converged_at_step": (Run.converged_at_step, pa.int64()),
    "steps_done": (Run.steps_done, pa.int64()), "initial_loss": (Run.initial_loss, pa.float64()),
    "final_loss": (Run.final_loss, pa.float64()), "min_loss": (Run.min_loss, pa.float64()),
    "final_eval_loss": (Run.final_eval_loss, pa.float64()), "clipped_steps": (Run.clipped_steps, pa.int64()),
    "max_grad_norm": (Run.max_grad_norm, pa.float64()),
    "divergence_grad_norm": (Run.divergence_grad_norm, pa.float64()), "device": (Run.device, pa.string()),
    "node": (Run.node, pa.string()), "attempts": (Run.attempts, pa.int32()), "error": (Run.error, pa.string()),
}
RUN_COLUMNS: dict[str, pa.DataType] = {name: kind for name, (_, kind) in _RUN_FIELDS.items()}
POINT_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.int64(), "cell_index": pa.int32(), "lr": pa.float64(), "clipping": pa.string(),
    "seed": pa.int64(), "outcome": pa.string(), "step": pa.int64(), "loss": pa.float64(),
    "grad_norm": pa.float64(), "clipped": pa.bool_(),
}


def _runs_query(sweep_id: int) -> tuple[Select[Any], Callable[[Any], tuple[Any, ...]]]:
    query = (select(*(column for column, _ in _RUN_FIELDS.values()))
             .where(Run.sweep_id == sweep_id).order_by(Run.cell_index, Run.seed))

    def row(r: Any) -> tuple[Any, ...]:
        values = dict(zip(_RUN_FIELDS, r))
        for name, nan_trigger in NAN_TRIGGERS.items():  # NaN is stored as NULL (service.db.models)
            values[name] = restore_nan(values[name], values["trigger"], nan_trigger)
        return tuple(values.values())

    return query, row


def _points_query(sweep_id: int) -> tuple[Select[Any], Callable[[Any], tuple[Any, ...]]]:
    query = (select(Run.id, Run.cell_index, Run.lr, Run.clip_label, Run.seed, Run.outcome, RunPoint.step,
                    RunPoint.loss, RunPoint.grad_norm, RunPoint.clipped, Run.trigger, Run.diverged_at_step)
             .join(RunPoint, RunPoint.run_id == Run.id)
             .where(Run.sweep_id == sweep_id).order_by(Run.cell_index, Run.seed, RunPoint.step))

    def row(r: Any) -> tuple[Any, ...]:
        loss, grad_norm = restore_point_nan(r.loss, r.grad_norm, r.trigger, r.step == r.diverged_at_step)
        return (*r[:7], loss, grad_norm, r.clipped)

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
