"""Health, readiness, and the registries a spec may name."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from service.api.auth import PUBLIC, READ
from service.api.deps import SessionDep
from service.api.guards import RETRY_AFTER_SECONDS
from service.db.schema import head_revision
from trainers.clipping import CLIPPERS
from trainers.tasks import plugin_errors, registered_tasks

router = APIRouter(prefix="/api/v1", tags=["meta"])


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str | None = Field(None, description="The database error's class, when it does not answer.")
    schema_: str | None = Field(None, alias="schema", description="The schema revision, when it is not this "
                                                                   "version's.")


@router.get("/healthz", dependencies=[Depends(PUBLIC)], response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "The database does not answer."}})
def healthz(session: SessionDep) -> JSONResponse:
    """Alive: the process answers and its database does."""
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                            content={"status": "unavailable", "database": type(exc).__name__})
    return JSONResponse({"status": "ok"})


@router.get("/readyz", dependencies=[Depends(PUBLIC)], response_model=HealthOut,
            responses={503: {"model": HealthOut,
                             "description": "Not ready: the database is away or at another revision."}})
def readyz(session: SessionDep) -> JSONResponse:
    """Ready for traffic: the database answers at the schema revision this version needs."""
    try:
        revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError as exc:
        return JSONResponse(status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                            content={"status": "unavailable", "database": type(exc).__name__})
    if revision != head_revision():
        return JSONResponse(status_code=503, content={
            "status": "unavailable", "schema": f"at {revision!r}, this clipsweep needs {head_revision()!r}"})
    return JSONResponse({"status": "ok"})


@router.get("/tasks", dependencies=[Depends(READ)])
def tasks() -> dict[str, Any]:
    """Built-in and plugin tasks with their parameters and defaults; plugins that failed to load
    are listed under `plugin_errors` with the reason."""
    return {"tasks": [cls.describe() for cls in registered_tasks().values()], "plugin_errors": plugin_errors()}


@router.get("/clipping-methods", dependencies=[Depends(READ)])
def clipping_methods() -> list[dict[str, Any]]:
    return [cls.describe() for cls in CLIPPERS.values()]
