"""The CSV and Parquet exports of runs and points, streamed from SQLite and PostgreSQL: the same
values the row reader reads, every NaN and infinity in place, strings quoted where they must be."""

from __future__ import annotations

import csv
import io
import math
import random
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session, sessionmaker

from service.analysis.export import POINT_COLUMNS, RUN_COLUMNS, export
from service.db.models import Run
from service.db.rows import point_row, read_runs, select_points, select_runs
from service.db.session import session_scope
from service.lifecycle.runs import fail_runs
from tests.factories import SPEC, hand_made_sweep, make_sweep, report, store


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
    assert by_key[(2, 0)]["divergence_grad_norm"] == "40" and by_key[(3, 2)]["outcome"] == ""
    assert by_key[(2, 0)]["outcome"] == "diverged" and by_key[(2, 0)]["clipping"] == "none"
    points = read_csv(exported(session_factory, sweep_id, points=True, file_format="csv"))
    assert list(points[0]) == list(POINT_COLUMNS)
    assert len(points) == 2 * 10  # two stored points for each of the ten finished runs
    divergence = [p for p in points if p["seed"] == "1" and p["cell_index"] == "2"]
    assert [(p["step"], p["grad_norm"]) for p in divergence] == [("0", "2"), ("2", "nan")]
    explosion = [p for p in points if p["seed"] == "0" and p["cell_index"] == "2"]
    assert explosion[-1]["grad_norm"] == "" and explosion[-1]["lr"] == "0.5"
    text = exported(session_factory, sweep_id, points=True, file_format="csv").decode()
    assert "\n1,0,0.1,none,0,unconverged,0,0.3,2,False\n" in text  # nothing needs quotes: none are


def test_parquet_export_matches_the_csv(session_factory: sessionmaker[Session]) -> None:
    sweep_id = hand_made_sweep(session_factory)
    for points in (False, True):
        body = exported(session_factory, sweep_id, points=points, file_format="parquet")
        table = pq.read_table(pa.BufferReader(body))
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


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


def _same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)  # NaN equals NaN, 2 equals 2.0, -0.0 does not equal 0.0


def test_the_files_hold_exactly_what_the_row_reader_reads(session_factory: sessionmaker[Session]) -> None:
    """A sweep with random points (NaN losses, missing and NaN norms, infinities, the extremes of a
    double), a failed chunk whose error has a comma and a line break, and an arm whose label has a
    comma, exported in small batches: each file row is the row reader's, value for value."""
    rng = random.Random(7)
    spec = {**SPEC, "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0, "norm_type": "inf"}],
            "seeds": 8}
    sweep_id = make_sweep(session_factory, spec)
    extremes = [math.inf, -math.inf, 5e-324, 1.7976931348623157e308, -0.0, 1e-05, 0.1, 2.0, 1 / 3]
    reports = []
    for cell in range(4):
        for seed in range(7):  # seed 7 of every cell is left to fail or stay pending
            steps = sorted(rng.sample(range(100), rng.randrange(1, 12)))
            points = [[step, rng.choice([rng.uniform(0, 5), math.nan, *extremes]),
                       rng.choice([rng.uniform(0, 50), None, math.inf, *extremes]), rng.random() < 0.5]
                      for step in steps]
            if rng.random() < 0.4:  # ends on a non-finite gradient at its last step
                points[-1][2] = math.nan
                reports.append(report(cell, seed, "diverged", trigger="nonfinite_grad", diverged_at_step=steps[-1],
                                      steps_done=steps[-1], divergence_grad_norm=math.nan, points=points))
            else:
                points = [[step, loss, norm if norm is None or not math.isnan(norm) else None, clipped]
                          for step, loss, norm, clipped in points]
                reports.append(report(cell, seed, points=points))
    rng.shuffle(reports)  # stored out of grid order: the points file goes by run, then step
    store(session_factory, sweep_id, reports)
    with session_scope(session_factory) as session:
        fail_runs(session, sweep_id, 1, [7], 'RuntimeError: "boom", at\nline 2')
    with session_factory() as session:
        runs = {run.id: run for run in read_runs(session, select_runs(Run.sweep_id == sweep_id))}
        points = [point_row(row) for row in session.execute(select_points(Run.sweep_id == sweep_id))]

    for file_format in ("csv", "parquet"):
        rows = exported_rows(session_factory, sweep_id, points=True, file_format=file_format, batch=7)
        assert len(rows) == len(points) > 100
        for row, (run_id, step, loss, grad_norm, clipped) in zip(rows, points):
            run = runs[run_id]
            expected = [run_id, run.cell_index, run.lr, run.clipping, run.seed, run.outcome.value, step,
                        loss, grad_norm, clipped]
            assert all(_same(a, b) for a, b in zip(row, expected)), (file_format, row, expected)
        in_file = exported_rows(session_factory, sweep_id, points=False, file_format=file_format, batch=5)
        assert len(in_file) == len(runs)
        for row, run in zip(in_file, sorted(runs.values(), key=lambda r: (r.cell_index, r.seed))):
            expected = [getattr(run, {"run_id": "id"}.get(name, name)) for name in RUN_COLUMNS]
            expected = [e.value if hasattr(e, "value") else e for e in expected]
            assert all(_same(a, b) for a, b in zip(row, expected)), (file_format, row, expected)
    body = exported(session_factory, sweep_id, points=True, file_format="csv").decode()
    assert body.startswith("run_id,cell_index,lr,clipping,seed,outcome,step,loss,grad_norm,clipped\n")
    assert '"norm(max_norm=1.0,norm_type=inf)"' in body  # where a value must be quoted, strings are


def exported_rows(factory: sessionmaker[Session], sweep_id: int, **options: Any) -> list[list[Any]]:
    """The file's rows as Python values: CSV text parsed by its column's type, Parquet as read."""
    columns = POINT_COLUMNS if options["points"] else RUN_COLUMNS
    body = exported(factory, sweep_id, **options)
    if options["file_format"] == "parquet":
        return [list(row.values()) for row in pq.read_table(pa.BufferReader(body)).to_pylist()]
    integer = lambda t: None if t == "" else int(t)  # noqa: E731
    parse = {pa.float64(): _float, pa.int64(): integer, pa.int32(): integer, pa.bool_(): lambda t: t == "True"}
    rows = list(csv.reader(io.StringIO(body.decode())))[1:]
    return [[parse.get(kind, lambda t: t or None)(text) for text, kind in zip(row, columns.values())] for row in rows]
