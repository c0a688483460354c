"""How a number is written for people, in one place: the CLI's tables, the headline, alert texts and
the statistics' messages. Halves round up, as the dashboard's `pct()` (JavaScript's `toFixed`)
rounds them, so 2 of 80 reads 3% on every screen (Python's own formatting rounds half to even: 2%)."""

from __future__ import annotations

import math


def percent(x: float) -> str:
    """A fraction as a whole percentage: 0.025 → '3%'."""
    return f"{math.floor(100 * x + 0.5)}%"


def percent_range(low: float, high: float) -> str:
    """An interval of fractions as whole percentages: '1–12'."""
    return f"{math.floor(100 * low + 0.5)}–{math.floor(100 * high + 0.5)}"
