"""Database access: models, engines and sessions, schema revisions."""

from service.db.models import Base, Run, RunOutcome, RunPoint, Sweep, SweepStatus
from service.db.session import make_engine, make_session_factory, session_scope

__all__ = ["Base", "Run", "RunOutcome", "RunPoint", "Sweep", "SweepStatus", "make_engine",
           "make_session_factory", "session_scope"]
