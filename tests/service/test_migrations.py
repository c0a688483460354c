"""Migrations are tested code, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from service.db import schema
from service.db.models import Base
from service.db.session import make_engine, make_session_factory, session_scope
from service.results import ReportedRun, store_results
from service.spec import parse_spec
from service.sweeps import create_sweep
from service.settings import Settings
from service.db.open import open_database


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
    assert {"sweeps", "runs", "run_points", "alembic_version"} <= tables(db_url)
    schema.downgrade(db_url, "base")
    assert tables(db_url) <= {"alembic_version"}
    schema.upgrade(db_url)
    assert {"sweeps", "runs", "run_points"} <= tables(db_url)


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
    with pytest.raises(schema.SchemaError, match="clipsweep db upgrade"):
        open_database(settings)
    assert tables(db_url) == set()  # refused means untouched


def test_a_database_at_an_older_revision_is_refused_too(db_url: str) -> None:
    schema.upgrade(db_url)
    schema.downgrade(db_url, "base")
    with pytest.raises(schema.SchemaError, match="clipsweep db upgrade"):
        open_database(Settings(database_url=db_url))


def test_a_database_from_a_newer_clipsweep_is_refused(db_url: str) -> None:
    schema.upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dfeed'")
    engine.dispose()
    with pytest.raises(schema.SchemaError, match="newer clipsweep"):
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
    with session_scope(factory) as session:
        sweep_id = create_sweep(session, parse_spec(SPEC), max_runs=100).id
        run = {"outcome": "unconverged", "steps_done": 10, "points": [[0, 0.3, 2.0, False], [9, 0.2, None, True]]}
        store_results(session, sweep_id, [ReportedRun(cell_index=0, seed=seed, run=run) for seed in range(3)])

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
