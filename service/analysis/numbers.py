"""How a number is written for people, in one place: the CLI's tables and progress, the headline,
alert texts, the queue's waits and the statistics' messages. The dashboard's `format` functions
(service/web/static/dashboard.js) follow the same rules, and a browser test holds them to these.
Halves round up, as JavaScript's `Math.round` rounds them, so 2 of 80 reads 3% on every screen
(Python's own formatting rounds half to even: 2%)."""

from __future__ import annotations

import math


def percent(x: float) -> str:
    """A fraction as a whole percentage: 0.025 → '3%'."""
    return f"{_round(100 * x)}%"


def percent_range(low: float, high: float) -> str:
    """An interval of fractions as whole percentages: '1–12'."""
    return f"{_round(100 * low)}–{_round(100 * high)}"


def _round(x: float) -> int:
    return math.floor(x + 0.5)


def count(n: float) -> str:
    """A whole number with thousands separated: 96000 → '96,000'."""
    return f"{_round(n):,}"


def steps(x: float) -> str:
    """A number of steps, whole or a median halfway between two: '2,962', '2,962.5'."""
    return count(x) if x == int(x) else f"{x:,.1f}"


def rate(per_second: float) -> str:
    """A pace: whole numbers from 10 up, one decimal below: '1,234', '2.5'."""
    return count(per_second) if per_second >= 10 else f"{_round(per_second * 10) / 10:.1f}"


def duration(seconds: float) -> str:
    """A span of time, as precise as a person needs: '45 s', '12 min', '1 h 5 min', '3 h'."""
    if seconds < 90:
        return f"{_round(seconds)} s"
    minutes = _round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"
