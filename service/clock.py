"""The service's one clock: timezone-aware UTC, for every timestamp it stores or compares."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)
