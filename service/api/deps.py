"""Dependencies of the API handlers, as typed aliases."""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from service.settings import Settings
from service.spec import INT32_MAX


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


# How many requests may hold a database session at once; the API's connection pool has as many
# connections (app.py), so a request admitted here never waits for one. Without this bound a
# burst of clients deadlocks the API: a request holds a connection from its auth check while it
# waits for a thread to run its handler, and every thread waits for a connection.
DB_SESSIONS = 16


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, used by every dependency and the handler (a streamed answer
    reads through it too, as the code after this `yield` runs only after the response was
    sent). A handler that writes commits once itself, before it answers: a client that reads
    right after a 201 must find what was created."""
    with request.app.state.session_factory() as session:
        yield session


# Requests beyond DB_SESSIONS wait for a turn on the event loop, holding nothing.
SessionDep = Annotated[Session, Depends(get_session, max_concurrency=DB_SESSIONS)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]


# Ids and counts in paths and queries stay within what the database stores (32-bit integers), so
# an out-of-range one is a 422, never an overflow inside the database driver.
SweepId = Annotated[int, Path(ge=0, le=INT32_MAX, description="A sweep's id.")]
RunId = Annotated[int, Path(ge=0, le=INT32_MAX, description="A run's id.")]
ScheduleId = Annotated[int, Path(ge=0, le=INT32_MAX, description="A schedule's id.")]
CellIndex = Annotated[int, Path(ge=0, le=INT32_MAX, description="A cell's index in its sweep's grid.")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX)]
