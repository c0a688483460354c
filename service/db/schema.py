"""Schema revisions: Alembic run from code, and the check made at start.

The embedded default (SQLite in the data directory) upgrades itself. Any other database at a
revision other than the code's is refused with the command that fixes it, so a production
PostgreSQL is never migrated behind its operator's back.
"""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations
from service.errors import SchemaError

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def ensure_schema(engine: Engine, url: str, *, auto_upgrade: bool) -> None:
    """Make sure the database is at the code's revision, or say exactly what to run."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config(url)).walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"the database is at schema revision {current!r}, which this version of clipsweep does "
            f"not know (its newest is {head!r}); it was written by a newer clipsweep: upgrade "
            "clipsweep, or point CLIPSWEEP_DATABASE_URL at another database")
    if auto_upgrade:
        upgrade(url)
        return
    where = "an empty database" if current is None else f"schema revision {current!r}"
    raise SchemaError(
        f"the database holds {where} but this clipsweep needs {head!r}; "
        "run `clipsweep db upgrade` (with the same CLIPSWEEP_DATABASE_URL) and start again")
