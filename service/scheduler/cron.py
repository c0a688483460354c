"""Cron expressions in an IANA time zone: checked with messages that say what is wrong, and their
fire times, in UTC. Pure: no clock, no database.

Parsing and stepping are cronsim's (it follows Debian's cron), with these rules at daylight saving
changes, stated in the README:
- a local time that does not exist (clocks jump from 02:00 to 03:00) fires at the first minute
  after the jump: `30 2 * * *` fires at 03:00 that night;
- a local time that happens twice (clocks go back from 03:00 to 02:00) fires once, the first time;
- an expression that fires every hour or more often keeps firing on the hour through both
  changes: `0 * * * *` fires twice at "02:00" the night clocks go back, an hour apart.
Fields are Vixie cron's: minute, hour, day of month, month, day of week (0 or 7 is Sunday; names
such as MON and JAN), and when both day fields are restricted either one matching fires.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from cronsim import CronSim, CronSimError

MACROS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
          "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
# Name, range and cronsim's name for each of the five fields, in order.
FIELDS = (("minute", 0, 59, "minute"), ("hour", 0, 23, "hour"), ("day of month", 1, 31, "day-of-month"),
          ("month", 1, 12, "month"), ("day of week", 0, 7, "day-of-week"))
MAX_LENGTH = 200
UTC = timezone.utc
# Fire times are looked for up to here: datetime itself ends at 9999, and nobody schedules a
# nightly sweep for the year 3000.
LAST_YEAR = 2999


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; `field` says which."""

    def __init__(self, field: Literal["cron", "timezone"], message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Cron:
    """A checked cron expression (five fields, macros expanded) in a time zone."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> Cron:
        """The expression and zone, checked; CronError says what is wrong with either."""
        zone = time_zone(timezone)
        text = " ".join(expression.split())
        fields = MACROS.get(text.lower(), text)
        if len(text) > MAX_LENGTH:
            raise CronError("cron", f"a cron expression has at most {MAX_LENGTH} characters")
        if text.startswith("@") and text.lower() not in MACROS:
            raise CronError("cron", f"unknown macro {text!r}; known: {', '.join(MACROS)}")
        if len(fields.split()) != 5:
            raise CronError("cron", f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
                                    f"or is one of {', '.join(MACROS)}; got {len(fields.split())} in {text!r}")
        try:
            CronSim(fields, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise CronError("cron", _explain(fields, str(exc))) from None
        return cls(fields, zone.key)

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times strictly after `after` (naive means UTC), in UTC; fewer if
        the expression stops firing before the year LAST_YEAR."""
        start = (after if after.tzinfo else after.replace(tzinfo=UTC)).astimezone(zoneinfo.ZoneInfo(self.timezone))
        times: list[datetime] = []
        steps = CronSim(self.expression, start)
        while len(times) < count:
            try:
                moment = next(steps)
            except (StopIteration, OverflowError):  # cronsim looks 50 years ahead; datetime ends at 9999
                break
            if moment.year > LAST_YEAR:
                break
            times.append(moment.astimezone(UTC))
        return times

    def latest_fire_times(self, since: datetime, until: datetime, count: int) -> list[datetime]:
        """Up to `count` fire times from `since` to `until`, both included, newest first, in UTC:
        what passed while no scheduler ran, without stepping through all of it."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        # Stepping back finds where the last `count` begin; stepping forward from there lists them,
        # so they are exactly the times stepping forward gives (which decides a DST night).
        steps = CronSim(self.expression, (until + timedelta(seconds=1)).astimezone(zone), reverse=True)
        earliest = None
        for _ in range(count + 1):
            try:
                moment = next(steps).astimezone(UTC)
            except (StopIteration, OverflowError):
                break
            if moment < since:
                break
            earliest = moment
        if earliest is None:
            return []
        start = max(since, earliest - timedelta(hours=2))  # a DST night's first occurrence is at most an hour earlier
        times = [t for t in self.fire_times(start - timedelta(seconds=1), 4 * count + 4) if since <= t <= until]
        return times[::-1][:count]

    def describe(self) -> str:
        """In words, e.g. "At 02:00 every day (Europe/Berlin)"."""
        return f"{CronSim(self.expression, datetime(2000, 1, 1)).explain()} ({self.timezone})"


def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`; CronError with the nearest known name when there is none."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: a path, a NUL
        close = difflib.get_close_matches(name, _zone_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (an IANA name such as 'Europe/Berlin' or 'UTC')"
        raise CronError("timezone", f"unknown time zone {name!r}{hint}") from None


@functools.cache
def _zone_names() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def _explain(fields: str, cronsim_message: str) -> str:
    """cronsim says only "Bad hour"; say which value, and what the field allows."""
    for (name, low, high, cronsim_name), text in zip(FIELDS, fields.split(), strict=True):
        if cronsim_name not in cronsim_message:
            continue
        for number in map(int, re.findall(r"(?<![/#\d])\d+", text)):  # values, not steps or nth weekdays
            if not low <= number <= high:
                return f"{name} {number} is out of range {low}–{high} (in {fields!r})"
        if name == "day of month" and re.fullmatch(r"[\d,\-]+", text):
            return f"day of month {text!r} never comes in month {fields.split()[3]!r}"
        return (f"{name} {text!r} is not a cron field: use *, a number {low}–{high}, a range such as "
                f"{low}-{low + 4}, a list such as {low},{low + 2}, or a step such as */2")
    return f"{cronsim_message} in {fields!r}"
