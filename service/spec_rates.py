"""A spec's learning rates: a list, or a search for each arm's highest stable one.

`learning_rates: {search: {low: 1e-3, high: 1.0, ratio: 1.25}}` is the log grid from `low` up to
`high` with neighbouring points `ratio` apart. Per arm, the worker probes it by bracketing and
bisection (service/lifecycle/search.py), each probe a cell decided by adaptive seeds, instead of
training every point.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag, WithJsonSchema, model_validator

from service.spec_seeds import Strict

MAX_POINTS = 1000


class Search(Strict):
    low: float = Field(gt=0, description="The lowest learning rate of the grid.")
    high: float = Field(gt=0, description="The highest the grid may reach.")
    ratio: float = Field(1.25, gt=1, le=100, description="Neighbouring points are this factor apart.")

    @model_validator(mode="after")
    def _a_grid(self) -> Search:
        if self.high <= self.low:
            raise ValueError(f"learning_rates.search: high ({self.high}) must be above low ({self.low})")
        if not math.isfinite(self.high / self.low):
            raise ValueError(f"learning_rates.search: high/low ({self.high}/{self.low}) is too large to count")
        if self.count() > MAX_POINTS:
            raise ValueError(f"learning_rates.search: {self.count()} points from {self.low} to {self.high} at "
                             f"ratio {self.ratio}; at most {MAX_POINTS}: raise the ratio or narrow the range")
        return self

    def count(self) -> int:
        return math.floor(math.log(self.high / self.low) / math.log(self.ratio) + 1e-9) + 1

    def points(self) -> list[float]:
        """The grid, low first; each point written with 10 significant digits (no float dust)."""
        return [float(f"{self.low * self.ratio ** k:.10g}") for k in range(self.count())]


class RateSearch(Strict):
    search: Search


def _form(value: Any) -> str:
    return "search" if isinstance(value, (dict, RateSearch)) else "list"


# The validators of SweepSpec say what is wrong with a list in words; the schema states the same.
LearningRates = Annotated[Union[
    Annotated[list[Annotated[float, Field(allow_inf_nan=False)]], Field(min_length=1, max_length=MAX_POINTS),
              Tag("list"), WithJsonSchema({"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                                           "minItems": 1, "maxItems": MAX_POINTS, "uniqueItems": True})],
    Annotated[RateSearch, Tag("search")],
], Discriminator(_form)]


def candidate_rates(rates: list[float] | RateSearch) -> list[float]:
    """Every learning rate the sweep may train: the list, or the search's whole grid."""
    return rates.search.points() if isinstance(rates, RateSearch) else list(rates)


def first_rates(rates: list[float] | RateSearch) -> list[float]:
    """The learning rates trained from the start: the list, or the search's first probe (the
    middle of its grid, where bisection begins)."""
    if isinstance(rates, RateSearch):
        points = rates.search.points()
        return [points[(len(points) - 1) // 2]]
    return list(rates)
