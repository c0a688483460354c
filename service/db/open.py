"""Opening the configured database, checked against the code's schema revision."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.db.schema import ensure_schema
from service.db.session import make_engine, make_session_factory
from service.settings import Settings


def open_database(settings: Settings, *, pool_size: int = 5) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for the configured database. The embedded default upgrades
    itself; any other database must already be at the code's revision (SchemaError otherwise)."""
    url = settings.resolved_database_url
    engine = make_engine(url, pool_size=pool_size)
    ensure_schema(engine, url, auto_upgrade=settings.is_embedded_database)
    return engine, make_session_factory(engine)
