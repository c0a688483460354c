"""Health and the registries a spec may name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import SessionDep
from trainers.clipping import CLIPPERS
from trainers.tasks import plugin_errors, registered_tasks

router = APIRouter(prefix="/api/v1", tags=["meta"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/tasks")
def tasks() -> dict[str, Any]:
    """Built-in and plugin tasks with their parameters and defaults; plugins that failed to load
    are listed under `plugin_errors` with the reason."""
    return {"tasks": [cls.describe() for cls in registered_tasks().values()], "plugin_errors": plugin_errors()}


@router.get("/clipping-methods")
def clipping_methods() -> list[dict[str, Any]]:
    return [cls.describe() for cls in CLIPPERS.values()]
