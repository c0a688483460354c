"""A sweep's runs and points read as pyarrow columns, for the export: millions of points, where a
type processor or a Python tuple per value cost an export 5-10x its time.

Each reader runs one query on the DBAPI cursor and turns each batch of rows into columns in one
pyarrow call. Values come as stored: NaN as null, which db/rows.py's column rules (`run_nans`,
`point_nans`) undo, as its row rules do for every other reader.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa
from sqlalchemy.orm import Session

# Where each exported run column is stored, when not in runs under its own name.
_RUN_SOURCE = {"run_id": "r.id", "lr": "c.lr", "clipping": "c.clip_label", "clip_method": "c.clip_method"}
_RUNS_WITH_CELLS = "FROM runs r JOIN cells c ON c.sweep_id = r.sweep_id AND c.cell_index = r.cell_index"


def stream_runs(session: Session, sweep_id: int, columns: dict[str, pa.DataType],
                batch: int = 65_536) -> Iterator[pa.Table]:
    """The sweep's runs in grid order (cell, then seed), in tables of at most `batch` rows with
    `columns` (RunRow's names, run_id for its id), plus `trigger` for `run_nans` if not asked."""
    columns = {**columns, "trigger": pa.string()}
    select = ", ".join(f"{_RUN_SOURCE.get(name, f'r.{name}')} AS {name}" for name in columns)
    yield from _tables(session, f"SELECT {select} {_RUNS_WITH_CELLS} WHERE r.sweep_id = {int(sweep_id)} "
                                "ORDER BY r.cell_index, r.seed", columns, batch)


def point_runs(session: Session, sweep_id: int) -> pa.Table:
    """What each run of a sweep gives its points in an export, by id: run_id, cell_index, lr,
    clipping (the arm's label), seed, outcome (null: none yet), trigger, diverged_at_step."""
    columns = {"run_id": pa.int64(), "cell_index": pa.int32(), "lr": pa.float64(), "clipping": pa.string(),
               "seed": pa.int64(), "outcome": pa.string(), "trigger": pa.string(), "diverged_at_step": pa.int64()}
    select = ", ".join(_RUN_SOURCE.get(name, f"r.{name}") for name in columns)
    query = f"SELECT {select} {_RUNS_WITH_CELLS} WHERE r.sweep_id = {int(sweep_id)} ORDER BY r.id"
    return pa.concat_tables([pa.schema(list(columns.items())).empty_table(),
                             *_tables(session, query, columns, 1 << 20)])


def stream_points(session: Session, sweep_id: int, batch: int = 65_536) -> Iterator[pa.Table]:
    """A sweep's stored points as stored (NaN as null: db/rows.point_nans undoes it), by run id
    then step, in tables of at most `batch` rows: run_id, step, loss, grad_norm, clipped."""
    # Ordered by the runs' id, not the points': each run's points come off its primary key in
    # order, and SQLite sorts nothing.
    query = ("SELECT p.run_id, p.step, p.loss, p.grad_norm, p.clipped FROM run_points p "
             f"JOIN runs r ON r.id = p.run_id WHERE r.sweep_id = {int(sweep_id)} ORDER BY r.id, p.step")
    postgres = session.connection().dialect.name == "postgresql"
    columns = {"run_id": pa.int64(), "step": pa.int64(), "loss": pa.float64(), "grad_norm": pa.float64(),
               "clipped": pa.bool_() if postgres else pa.int8()}  # SQLite's booleans are 0/1
    for table in _tables(session, query, columns, batch):
        yield table.set_column(4, "clipped", table["clipped"].cast(pa.bool_()))


def _tables(session: Session, query: str, columns: dict[str, pa.DataType], batch: int) -> Iterator[pa.Table]:
    """`query`'s rows in tables of at most `batch` rows, typed as `columns` says. PostgreSQL
    reads through a server-side cursor, so memory stays bounded at any size. (`query` holds no
    parameters: the callers put in the integers they were given.)"""
    connection = session.connection()
    driver = connection.connection.driver_connection
    postgres = connection.dialect.name == "postgresql"
    cursor = driver.cursor(name="clipsweep_export") if postgres else driver.cursor()
    row_type = pa.struct(list(columns.items()))
    try:
        cursor.execute(query)
        while rows := cursor.fetchmany(batch):
            yield pa.Table.from_struct_array(pa.array(rows, type=row_type))
    finally:
        cursor.close()
