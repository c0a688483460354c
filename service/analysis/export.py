"""A sweep's runs, or its points, as a CSV or Parquet file, streamed in bounded memory.

Runs: one row per run with every stored field, in grid order (cell, then seed). Points: one row
per stored point, by run (in the order the runs were planned) then step, with the run's
identifying columns (run_id, cell, lr, clipping, seed, outcome) so the file stands on its own;
join on run_id with the runs file for the rest. NaN and infinities are written as they are
(CSV: nan, inf, -inf; Parquet: IEEE values); an empty CSV field or a Parquet null is a value that
was never computed.

Both files are written from pyarrow tables, one per batch of rows: floats in their shortest form
that reads back to the same double (0.1, 0.00001, 1e+16, 2), booleans True/False, strings quoted
only in a batch where one of them must be (a comma, a quote or a line break). The points come off
the database's cursor as columns (db/columns.py) and are given their runs' identity by lookup,
never a Python object per value: a sweep has millions of points.
"""

from __future__ import annotations

import io
import queue
import tempfile
import threading
from typing import Any, Iterable, Iterator, Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from service.db.columns import point_runs, stream_points, stream_runs
from service.db.rows import nan_norm_steps, point_nans, run_nans

# The columns of each file, in file order, with their Parquet types (a run's are RunRow's fields,
# its id as run_id).
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


def _run_tables(session: Session, sweep_id: int, batch: int) -> Iterator[pa.Table]:
    for runs in stream_runs(session, sweep_id, RUN_COLUMNS, batch):
        yield run_nans(runs).select(list(RUN_COLUMNS))


def _point_tables(session: Session, sweep_id: int, batch: int) -> Iterator[pa.Table]:
    runs = point_runs(session, sweep_id)
    nan_steps = nan_norm_steps(runs["trigger"], runs["diverged_at_step"])
    schema = pa.schema(list(POINT_COLUMNS.items()))
    for points in stream_points(session, sweep_id, batch):
        of_run = pc.index_in(points["run_id"], value_set=runs["run_id"])  # each point's run, a row of `runs`
        loss, grad_norm = point_nans(points, nan_steps.take(of_run))
        identity = {name: runs[name].take(of_run) for name in ("cell_index", "lr", "clipping", "seed", "outcome")}
        yield pa.table({"run_id": points["run_id"], **identity, "step": points["step"], "loss": loss,
                        "grad_norm": grad_norm, "clipped": points["clipped"]}).cast(schema)


def export(session: Session, sweep_id: int, *, points: bool, file_format: Literal["csv", "parquet"],
           batch: int = 65_536) -> Iterator[bytes]:
    """The sweep's runs (or points) as a file's bytes, read from the database in batches of
    `batch` rows through `session`, which must stay open until the bytes are consumed."""
    tables = _read_ahead(_point_tables(session, sweep_id, batch) if points else _run_tables(session, sweep_id, batch))
    columns = POINT_COLUMNS if points else RUN_COLUMNS
    return stream_csv(tables, columns) if file_format == "csv" else stream_parquet(tables, columns)


T = TypeVar("T")
_END = object()


def _read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """`items`, made in a thread of their own up to `depth` ahead: the next batch is read from
    the database while pyarrow writes this one (it lets go of the GIL), which took a third off an
    export's time. Closing this iterator (a client that went away) stops the thread, and the
    thread closes `items` (and so the database cursor) itself. The session is only ever used by
    that thread while it runs."""
    ready: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            else:
                put(_END)
        except BaseException as exc:  # handed to the reader, raised there
            put(exc)
        finally:
            if hasattr(items, "close"):
                items.close()

    thread = threading.Thread(target=produce, name="export-read-ahead", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


_FALSE_TRUE = pa.array(["False", "True"])
_NEEDS_QUOTES = '[,"\r\n]'


def _as_csv(table: pa.Table) -> bytes:
    """One batch as CSV lines: booleans as True/False, strings quoted only if one of them must be."""
    columns = [pa.DictionaryArray.from_arrays(column.combine_chunks().cast(pa.int8()), _FALSE_TRUE)
               if pa.types.is_boolean(column.type) else column for column in table.columns]
    quote = any(pc.any(pc.match_substring_regex(column, _NEEDS_QUOTES)).as_py()
                for column in table.columns if pa.types.is_string(column.type))
    out = io.BytesIO()
    pa_csv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), out,
                     pa_csv.WriteOptions(include_header=False, quoting_style="needed" if quote else "none"))
    return out.getvalue()


def stream_csv(tables: Iterable[pa.Table], columns: Iterable[str]) -> Iterator[bytes]:
    yield (",".join(columns) + "\n").encode()  # plain names: the header needs no quotes
    for table in tables:
        if table.num_rows:
            yield _as_csv(table)


def stream_parquet(tables: Iterable[pa.Table], columns: dict[str, pa.DataType],
                   chunk: int = 1 << 20) -> Iterator[bytes]:
    """A Parquet file needs its footer written last, so it is built in a temporary file (one row
    group per batch, memory stays bounded) and then streamed."""
    schema = pa.schema(list(columns.items()))
    with tempfile.TemporaryFile() as spool:
        with pq.ParquetWriter(spool, schema, compression="zstd") as writer:
            for table in tables:
                writer.write_table(table)
        spool.seek(0)
        while data := spool.read(chunk):
            yield data
