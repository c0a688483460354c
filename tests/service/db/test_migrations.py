"""Migrations are tested code, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from service.db import schema
from service.db.models import Base, Cell, Sweep
from service.db.open import open_database
from service.db.session import make_engine, make_session_factory, session_scope
from service.errors import SchemaError
from service.grid import cells
from service.settings import Settings
from service.spec import SweepSpec
from tests.factories import make_sweep, report, store
from tests.harness import in_process
from tests.service.db import data_at_0004
from trainers import TrainConfig

SPEC: dict[str, Any] = {"task": {"name": "adding"}, "learning_rates": [0.1], "clipping": [{"method": "none"}],
                        "seeds": 3, "budget": {"max_steps": 10}}


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    schema.upgrade(db_url)
    assert {"sweeps", "cells", "runs", "run_points", "alembic_version"} <= tables(db_url)
    schema.downgrade(db_url, "base")
    assert tables(db_url) <= {"alembic_version"}
    schema.upgrade(db_url)
    assert {"sweeps", "cells", "runs", "run_points"} <= tables(db_url)


def test_models_and_migrations_agree(db_url: str) -> None:
    """Autogenerate finds no difference: nobody changed a model without a migration."""
    schema.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_a_configured_database_that_is_not_upgraded_is_refused_with_the_fix(db_url: str) -> None:
    settings = Settings(database_url=db_url)
    with pytest.raises(SchemaError, match="clipsweep db upgrade"):
        open_database(settings)
    assert tables(db_url) == set()  # refused means untouched


def test_a_database_at_an_older_revision_is_refused_too(db_url: str) -> None:
    schema.upgrade(db_url)
    schema.downgrade(db_url, "base")
    with pytest.raises(SchemaError, match="clipsweep db upgrade"):
        open_database(Settings(database_url=db_url))


def test_a_database_from_a_newer_clipsweep_is_refused(db_url: str) -> None:
    schema.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
    engine.dispose()
    with pytest.raises(SchemaError, match="newer clipsweep"):
        open_database(Settings(database_url=db_url))


def test_the_embedded_default_upgrades_itself(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    engine, _ = open_database(settings)
    assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()
    assert (tmp_path / "data" / "clipsweep.sqlite3").exists()


def test_stored_points_survive_dropping_and_restoring_their_foreign_key(db_url: str) -> None:
    """0004 drops run_points' key (on SQLite by rebuilding the table) and its downgrade restores it:
    the points stored are kept both ways."""
    schema.upgrade(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    sweep_id = make_sweep(factory, SPEC)
    store(factory, sweep_id, [report(0, seed, points=[[0, 0.3, 2.0, False], [9, 0.2, None, True]])
                              for seed in range(3)])

    def points() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(
                "SELECT run_id, step, loss, grad_norm, clipped FROM run_points ORDER BY run_id, step")]

    stored = points()
    assert len(stored) == 6
    schema.downgrade(db_url, "0003")
    assert points() == stored
    schema.upgrade(db_url)
    assert points() == stored
    engine.dispose()


def at_0004(url: str) -> None:
    """A database written by clipsweep at revision 0004 (tests/service/db/data_at_0004.py)."""
    schema.upgrade(url, "0004")
    engine = make_engine(url)
    data_at_0004.build(engine)
    engine.dispose()


def matches(got: Any, want: Any, path: str = "") -> list[str]:
    """Where `got` differs from `want` (keys only in `got`, new since 0004, are allowed)."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [problem for key in want for problem in
                (matches(got[key], want[key], f"{path}.{key}") if key in got else [f"{path}.{key}: missing"])]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [problem for i, (g, w) in enumerate(zip(got, want)) for problem in matches(g, w, f"{path}[{i}]")]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def csv_values(text: str) -> list[list[Any]]:
    """A CSV file's rows as values: a number as a float (NaN as "nan"), an empty field None."""
    def value(field: str) -> Any:
        if field == "":
            return None
        try:
            number = float(field)
        except ValueError:
            return field
        return "nan" if math.isnan(number) else number

    header, *rows = csv.reader(io.StringIO(text))
    return [header] + [[value(field) for field in row] for row in rows]


def test_a_database_written_at_0004_answers_exactly_as_it_did(db_url: str) -> None:
    """Every sweep of a 0004 database, upgraded: the same summary at two tolerances, the same runs,
    series, run details (the config that reproduces a run) and exports as clipsweep gave before."""
    at_0004(db_url)
    schema.upgrade(db_url)
    want = json.loads((Path(data_at_0004.__file__).parent / "summaries_at_0004.json").read_text())
    with in_process(Settings(database_url=db_url)) as client:
        got = json.loads(json.dumps(data_at_0004.answers(client)))
    assert set(got) == set(want)
    for sweep_id, answer in got.items():  # new since 0004: a queued sweep says what it waits behind
        sweep, before = answer["sweep"], want[sweep_id]["sweep"]
        if sweep["status"] == "queued" and before["status_detail"] is None:
            assert sweep["status_detail"].startswith("queued behind sweep "), sweep["status_detail"]
            sweep["status_detail"] = None
        # New since: an unfinished sweep's headline says it is provisional (so far, with the counts).
        for key, summary in answer.items():
            if key.startswith("summary") and not sweep["finished"] and summary["headline"] is not None:
                assert summary["headline"].startswith("so far "), summary["headline"]
                summary["headline"] = want[sweep_id][key]["headline"]
        # Since: the exports are written by pyarrow (floats in their shortest form, 2 for 2.0,
        # strings quoted in a batch where one must be), and the points file goes by run, then
        # step. The values must be the same.
        for answers in (answer, want[sweep_id]):
            answers["export_runs"] = csv_values(answers["export_runs"])
            header, *points = csv_values(answers["export_points"])
            answers["export_points"] = [header, *sorted(points, key=lambda row: (row[0], row[6]))]
    problems = matches(got, want)
    assert problems == [], problems[:20]
    assert all(sweep["sweep"]["finished"] == (sweep["sweep"]["status"] in ("succeeded", "failed", "cancelled"))
               for sweep in got.values())


def test_upgrading_from_0004_stores_each_cell_as_submit_would_have(db_url: str) -> None:
    """The cells filled in from old rows carry the configuration, label and hash that submitting
    the stored spec today gives (the migration's own copy of the config rules is held to the
    application's here)."""
    at_0004(db_url)
    schema.upgrade(db_url)
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as session:
        specs = dict(session.execute(select(Sweep.id, Sweep.spec)).all())
        stored = session.scalars(select(Cell).order_by(Cell.sweep_id, Cell.cell_index)).all()
    engine.dispose()
    assert len(stored) == sum(len(s["learning_rates"]) * len(s["clipping"]) for s in specs.values())
    for cell in stored:
        planned = cells(SweepSpec.model_validate(specs[cell.sweep_id]))[cell.cell_index]
        assert cell.config == planned.config.to_dict()
        assert (cell.lr, cell.clip_label, cell.clip_method, cell.clip_params) == (
            planned.lr, planned.label, planned.clipping.method, dict(planned.clipping.params))
        assert cell.config_hash == planned.config.content_hash() == TrainConfig.from_dict(cell.config).content_hash()


def test_0005_downgrades_to_the_rows_0004_wrote(db_url: str) -> None:
    """Down from 0005 the runs get their copied cell columns back, equal to what 0004 stored."""
    at_0004(db_url)
    engine = make_engine(db_url)

    def rows() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(
                "SELECT id, sweep_id, cell_index, lr, clip_method, clip_params, clip_label, seed, outcome "
                "FROM runs ORDER BY id")]

    before = rows()
    schema.upgrade(db_url)
    schema.downgrade(db_url, "0004")
    assert rows() == before and "cells" not in tables(db_url)
    schema.upgrade(db_url)
    engine.dispose()
