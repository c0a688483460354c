"""Column types that hide how a backend stores a value: NaN as NULL, timestamps in UTC, states
as their names. Only the row reader (service/db/rows.py) undoes NanAsNull."""

from __future__ import annotations

import enum
import math
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Float, String
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.Enum)


class NanAsNull(TypeDecorator[float]):
    """A double that stores NaN as NULL on every backend: SQLite cannot store NaN, PostgreSQL can,
    and one rule for both keeps the readers simple. The run's trigger tells what a NULL means."""

    impl = Float(precision=53)
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Any) -> float | None:
        return None if value is None or math.isnan(value) else value


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC. PostgreSQL keeps the zone;
    SQLite returns naive datetimes, which API clients would read as their local time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class EnumText(TypeDecorator[E], Generic[E]):
    """A str enum stored as its value in a plain VARCHAR (no database enum type to migrate when a
    state is added), read back as the enum member."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum_type: type[E], length: int = 16) -> None:
        super().__init__(length)
        self.enum_type = enum_type
        self._members = {member.value: member for member in enum_type}  # a dict is faster than the enum's call

    def process_bind_param(self, value: E | str | None, dialect: Any) -> str | None:
        return None if value is None else self.enum_type(value).value

    def process_result_value(self, value: str | None, dialect: Any) -> E | None:
        return None if value is None else self._members[value]
