"""Health and the registries a spec may name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import text

from service.api.deps import SessionDep
from trainers.clipping import CLIPPERS
from trainers.tasks import TASKS

router = APIRouter(prefix="/api/v1", tags=["meta"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/tasks")
def tasks() -> list[dict[str, Any]]:
    return [cls.describe() for cls in TASKS.values()]


@router.get("/clipping-methods")
def clipping_methods() -> list[dict[str, Any]]:
    return [cls.describe() for cls in CLIPPERS.values()]
