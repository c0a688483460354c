"""A sweep's runs, or its points, as a CSV or Parquet file, streamed in bounded memory.

Runs: one row per run with every stored field. Points: one row per stored point, with the run's
identifying columns (run_id, cell, lr, clipping, seed, outcome) so the file stands on its own;
join on run_id with the runs file for the rest. NaN and infinities are written as they are
(CSV: nan, inf, -inf; Parquet: IEEE values); an empty CSV field or a Parquet null is a value that
was never computed. The rows come from the row reader in batches (db/rows.stream).
"""

from __future__ import annotations

import csv
import io
import tempfile
from typing import Any, Callable, Iterable, Iterator, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from service.db.models import Run, RunPoint
from service.db.rows import RunRow, point_row, read_runs, run_row, select_points, select_runs, stream

# Each exported run column: the RunRow field it reads and its Parquet type, in file order.
_RUN_FIELDS: dict[str, tuple[str, pa.DataType]] = {
    "run_id": ("id", pa.int64()), "sweep_id": ("sweep_id", pa.int64()), "cell_index": ("cell_index", pa.int32()),
    "lr": ("lr", pa.float64()), "clipping": ("clipping", pa.string()), "clip_method": ("clip_method", pa.string()),
    "seed": ("seed", pa.int64()), "outcome": ("outcome", pa.string()), "trigger": ("trigger", pa.string()),
    "diverged_at_step": ("diverged_at_step", pa.int64()), "converged_at_step": ("converged_at_step", pa.int64()),
    "steps_done": ("steps_done", pa.int64()), "initial_loss": ("initial_loss", pa.float64()),
    "final_loss": ("final_loss", pa.float64()), "min_loss": ("min_loss", pa.float64()),
    "final_eval_loss": ("final_eval_loss", pa.float64()), "clipped_steps": ("clipped_steps", pa.int64()),
    "max_grad_norm": ("max_grad_norm", pa.float64()),
    "divergence_grad_norm": ("divergence_grad_norm", pa.float64()), "device": ("device", pa.string()),
    "node": ("node", pa.string()), "attempts": ("attempts", pa.int32()), "error": ("error", pa.string()),
}
RUN_COLUMNS: dict[str, pa.DataType] = {name: kind for name, (_, kind) in _RUN_FIELDS.items()}
POINT_COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.int64(), "cell_index": pa.int32(), "lr": pa.float64(), "clipping": pa.string(),
    "seed": pa.int64(), "outcome": pa.string(), "step": pa.int64(), "loss": pa.float64(),
    "grad_norm": pa.float64(), "clipped": pa.bool_(),
}


def run_values(row: Any) -> tuple[Any, ...]:
    """A database row of `select_runs` as one exported row, in RUN_COLUMNS order."""
    run: RunRow = run_row(row)
    return tuple(getattr(run, attribute) for attribute, _ in _RUN_FIELDS.values())


def _point_values(session: Session, sweep_id: int) -> Callable[[Any], tuple[Any, ...]]:
    """A database row of `select_points` as one exported row, in POINT_COLUMNS order: the point
    and its run's identity, read once per sweep rather than joined to every point."""
    identity = {run.id: (run.cell_index, run.lr, run.clipping, run.seed, run.outcome)
                for run in read_runs(session, select_runs(Run.sweep_id == sweep_id))}

    def values(row: Any) -> tuple[Any, ...]:
        run_id, *point = point_row(row)
        return (run_id, *identity[run_id], *point)

    return values


def export(session: Session, sweep_id: int, *, points: bool,
           file_format: Literal["csv", "parquet"]) -> Iterator[bytes]:
    """The sweep's runs (or points) as a file's bytes, read from the database in batches through
    `session`, which must stay open until the bytes are consumed."""
    if points:
        in_grid_order = select_points(Run.sweep_id == sweep_id).order_by(None).order_by(
            Run.cell_index, Run.seed, RunPoint.step)
        batches = stream(session, in_grid_order, _point_values(session, sweep_id))
    else:
        batches = stream(session, select_runs(Run.sweep_id == sweep_id), run_values)
    columns = POINT_COLUMNS if points else RUN_COLUMNS
    return stream_csv(batches, columns) if file_format == "csv" else stream_parquet(batches, columns)


def stream_csv(batches: Iterable[list[tuple[Any, ...]]], columns: Iterable[str]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for batch in batches:
        writer.writerows(batch)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def stream_parquet(batches: Iterable[list[tuple[Any, ...]]], columns: dict[str, pa.DataType],
                   chunk: int = 1 << 20) -> Iterator[bytes]:
    """A Parquet file needs its footer written last, so it is built in a temporary file (one row
    group per batch, memory stays bounded) and then streamed."""
    schema = pa.schema(list(columns.items()))
    with tempfile.TemporaryFile() as spool:
        with pq.ParquetWriter(spool, schema, compression="zstd") as writer:
            for batch in batches:
                arrays = [pa.array(values, type=field.type) for values, field in zip(zip(*batch), schema)]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        spool.seek(0)
        while data := spool.read(chunk):
            yield data
