"""The CSV and Parquet exports of runs and points, streamed from SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.export import POINT_COLUMNS, RUN_COLUMNS, export
from tests.factories import hand_made_sweep


def exported(factory: sessionmaker[Session], sweep_id: int, **options: Any) -> bytes:
    with factory() as session:
        return b"".join(export(session, sweep_id, **options))


def read_csv(body: bytes) -> list[dict[str, Any]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_csv_export_of_runs_and_points(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    runs = read_csv(exported(session_factory, sweep_id, points=False, file_format="csv"))
    assert len(runs) == 12 and list(runs[0]) == list(RUN_COLUMNS)
    by_key = {(int(r["cell_index"]), int(r["seed"])): r for r in runs}
    assert by_key[(2, 1)]["max_grad_norm"] == "nan" and by_key[(2, 2)]["final_loss"] == "nan"
    assert by_key[(2, 0)]["divergence_grad_norm"] == "40.0" and by_key[(3, 2)]["outcome"] == ""
    assert by_key[(2, 0)]["outcome"] == "diverged" and by_key[(2, 0)]["clipping"] == "none"
    points = read_csv(exported(session_factory, sweep_id, points=True, file_format="csv"))
    assert list(points[0]) == list(POINT_COLUMNS)
    assert len(points) == 2 * 10  # two stored points for each of the ten finished runs
    divergence = [p for p in points if p["seed"] == "1" and p["cell_index"] == "2"]
    assert [(p["step"], p["grad_norm"]) for p in divergence] == [("0", "2.0"), ("2", "nan")]
    explosion = [p for p in points if p["seed"] == "0" and p["cell_index"] == "2"]
    assert explosion[-1]["grad_norm"] == "" and explosion[-1]["lr"] == "0.5"


def test_parquet_export_matches_the_csv(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    for points in (False, True):
        table = pq.read_table(pa.BufferReader(exported(session_factory, sweep_id, points=points, file_format="parquet")))
        rows = read_csv(exported(session_factory, sweep_id, points=points, file_format="csv"))
        assert table.schema.names == list(POINT_COLUMNS if points else RUN_COLUMNS)
        assert table.num_rows == len(rows)
        for column in ("seed", "cell_index", "outcome"):
            assert [str(v) if v is not None else "" for v in table.column(column).to_pylist()] == \
                [r[column] for r in rows]
    runs = pq.read_table(pa.BufferReader(exported(session_factory, sweep_id, points=False, file_format="parquet")))
    norms = dict(zip(zip(runs.column("cell_index").to_pylist(), runs.column("seed").to_pylist()),
                     runs.column("max_grad_norm").to_pylist()))
    assert math.isnan(norms[(2, 1)]) and norms[(3, 0)] == 12.0 and norms[(3, 1)] is None
