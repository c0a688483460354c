"""Fire times of cron expressions in time zones, against fixed datetimes: both daylight saving
changes in Europe/Berlin and America/New_York, a schedule at 02:30 local, macros, month ends,
February 29; and every refusal saying what is wrong."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from service.scheduler.cron import Cron, CronError


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=timezone.utc)


def fires(expression: str, zone: str, after: datetime, count: int = 3) -> list[datetime]:
    return Cron.parse(expression, zone).fire_times(after, count)


# Europe/Berlin 2026: 02:00 → 03:00 on March 29 (01:00 UTC); 03:00 → 02:00 on October 25 (01:00 UTC).
# America/New_York 2026: 02:00 → 03:00 on March 8 (07:00 UTC); 02:00 → 01:00 on November 1 (06:00 UTC).
@pytest.mark.parametrize(("expression", "zone", "after", "expected"), [
    # 02:30 does not exist the night clocks jump: it fires at 03:00, the first minute after.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12), [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0),
                                                            utc(2026, 3, 30, 0, 30)]),
    ("30 2 * * *", "America/New_York", utc(2026, 3, 6, 12), [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0),
                                                              utc(2026, 3, 9, 6, 30)]),
    # 02:30 happens twice the night clocks go back in Berlin: it fires once, the first time.
    ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 23, 12), [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30),
                                                             utc(2026, 10, 26, 1, 30)]),
    ("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30),
                                                                utc(2026, 11, 3, 6, 30)]),
    # Hourly keeps firing every real hour through both changes.
    ("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 30), [utc(2026, 10, 25, 0), utc(2026, 10, 25, 1),
                                                                utc(2026, 10, 25, 2)]),
    ("0 * * * *", "America/New_York", utc(2026, 3, 8, 5, 30), [utc(2026, 3, 8, 6), utc(2026, 3, 8, 7),
                                                                utc(2026, 3, 8, 8)]),
    # Macros, month ends, the 29th of February, and UTC by default.
    ("@daily", "UTC", utc(2026, 2, 27, 12), [utc(2026, 2, 28), utc(2026, 3, 1), utc(2026, 3, 2)]),
    ("@hourly", "UTC", utc(2026, 12, 31, 22, 30), [utc(2026, 12, 31, 23), utc(2027, 1, 1, 0), utc(2027, 1, 1, 1)]),
    ("@weekly", "UTC", utc(2026, 12, 4), [utc(2026, 12, 6), utc(2026, 12, 13), utc(2026, 12, 20)]),
    ("0 0 31 * *", "UTC", utc(2026, 1, 31, 12), [utc(2026, 3, 31), utc(2026, 5, 31), utc(2026, 7, 31)]),
    ("0 0 29 2 *", "UTC", utc(2026, 1, 1), [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]),
    # Both day fields restricted: either one fires (Vixie cron).
    ("0 12 1 * MON", "UTC", utc(2026, 11, 28), [utc(2026, 11, 30, 12), utc(2026, 12, 1, 12), utc(2026, 12, 7, 12)]),
])
def test_fire_times(expression: str, zone: str, after: datetime, expected: list[datetime]) -> None:
    assert fires(expression, zone, after) == expected


def test_fire_times_are_strictly_after_and_a_naive_start_is_utc() -> None:
    daily = Cron.parse("0 2 * * *", "UTC")
    assert daily.fire_times(utc(2026, 1, 1, 2), 1) == [utc(2026, 1, 2, 2)]
    assert daily.fire_times(datetime(2026, 1, 1, 1, 59), 1) == [utc(2026, 1, 1, 2)]


def test_fire_times_stop_before_the_year_3000() -> None:
    assert Cron.parse("0 0 29 2 *").fire_times(utc(2990, 1, 1), 5) == [utc(2992, 2, 29), utc(2996, 2, 29)]
    assert Cron.parse("@daily").fire_times(datetime(9999, 12, 31, 12), 3) == []


def test_an_expression_is_kept_as_five_fields_in_its_zone_and_said_in_words() -> None:
    nightly = Cron.parse("  @daily ", "Europe/Berlin")
    assert (nightly.expression, nightly.timezone) == ("0 0 * * *", "Europe/Berlin")
    assert Cron.parse("0 2 * * *", "Europe/Berlin").describe() == "At 02:00 every day (Europe/Berlin)"


@pytest.mark.parametrize(("expression", "zone", "field", "message"), [
    ("0 25 * * *", "UTC", "cron", "hour 25 is out of range 0–23 (in '0 25 * * *')"),
    ("5-70 * * * *", "UTC", "cron", "minute 70 is out of range 0–59"),
    ("0 0 * 13 *", "UTC", "cron", "month 13 is out of range 1–12"),
    ("0 0 30 2 *", "UTC", "cron", "day of month '30' never comes in month '2'"),
    ("a * * * *", "UTC", "cron", "minute 'a' is not a cron field: use *, a number 0–59"),
    ("* * *", "UTC", "cron", "a cron expression has 5 fields (minute hour day-of-month month day-of-week)"),
    ("@sometimes", "UTC", "cron", "unknown macro '@sometimes'; known: @hourly, @daily"),
    ("0 2 * * *", "Europe/Berln", "timezone", "unknown time zone 'Europe/Berln'; did you mean 'Europe/Berlin'?"),
    ("0 2 * * *", "../../etc/passwd", "timezone", "unknown time zone '../../etc/passwd' (an IANA name such as"),
    ("0 2 * * *", "UTC\x00", "timezone", "unknown time zone"),
    ("0 " * 101, "UTC", "cron", "a cron expression has at most 200 characters"),
])
def test_a_refusal_names_the_field_and_what_is_wrong(expression: str, zone: str, field: str, message: str) -> None:
    with pytest.raises(CronError) as refused:
        Cron.parse(expression, zone)
    assert refused.value.field == field and str(refused.value).startswith(message)
