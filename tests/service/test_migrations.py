"""Migrations are tested code, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from service.db import schema
from service.db.models import Base
from service.db.session import make_engine
from service.settings import Settings
from service.db.open import open_database


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
