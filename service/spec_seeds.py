"""A spec's seeds: how many, which, or chosen adaptively round by round.

`seeds: 80` trains seeds 0..79 in every cell, `seeds: [3, 7]` those two; `seeds: {adaptive: {...}}`
starts every cell with `min` seeds and adds `batch` more at a learning rate, to every arm there
(the seeds stay paired), round after round, until the anytime-valid tests of
service/analysis/sequential.py decide its questions or it reaches `max` (service/lifecycle/adaptive.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, model_validator

# Ids, seeds and counts are stored as 32-bit integers on every backend.
INT32_MAX = 2**31 - 1


class Strict(BaseModel):
    # strict: "0.5" is not a learning rate; allow_inf_nan=False: neither is NaN.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Adaptive(Strict):
    min: int = Field(16, ge=1, le=1_000_000, description="Seeds every cell starts with.")
    max: int = Field(512, ge=1, le=1_000_000, description="Most seeds a cell may get.")
    batch: int = Field(16, ge=1, le=1_000_000, description="Seeds added to an undecided learning rate per round.")
    tolerance: float = Field(0.05, gt=0, lt=1, description=(
        "A cell is stable when its divergence rate is shown to be under this, unstable when over it."))
    alpha: float = Field(0.05, ge=1e-6, le=0.2, description=(
        "Chance of a wrong verdict per question, whenever the sweep looks and stops."))
    first: int = Field(0, ge=0, le=INT32_MAX, description="The first seed; the others follow it.")

    @model_validator(mode="after")
    def _ordered(self) -> Adaptive:
        if self.max < self.min:
            raise ValueError(f"adaptive seeds: max ({self.max}) must be at least min ({self.min})")
        if self.first + self.max - 1 > INT32_MAX:
            raise ValueError(f"adaptive seeds: first + max - 1 must be at most {INT32_MAX}")
        return self


class AdaptiveSeeds(Strict):
    adaptive: Adaptive


def _form(value: Any) -> str:
    """Which form of seeds a value is, so that a bad one is told about that form only."""
    return "list" if isinstance(value, list) else "adaptive" if isinstance(value, (dict, AdaptiveSeeds)) else "count"


# The validators below say what is wrong in words; the schema states the same constraints.
Seeds = Annotated[Union[
    Annotated[int, Tag("count"), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": INT32_MAX})],
    Annotated[list[int], Tag("list"), WithJsonSchema({
        "type": "array", "items": {"type": "integer", "minimum": 0, "maximum": INT32_MAX}, "minItems": 1,
        "uniqueItems": True})],
    Annotated[AdaptiveSeeds, Tag("adaptive")],
], Discriminator(_form)]


def check_seeds(seeds: int | list[int] | AdaptiveSeeds) -> int | list[int] | AdaptiveSeeds:
    """The seeds as given, or ValueError saying what is wrong with them."""
    if isinstance(seeds, AdaptiveSeeds):
        return seeds
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (how many) or a list of seeds, got {seeds}")
        if seeds > INT32_MAX:
            raise ValueError(f"seeds must be at most {INT32_MAX}, got {seeds}")
        return seeds
    if not seeds:
        raise ValueError("an explicit seed list must not be empty")
    if any(not 0 <= s <= INT32_MAX for s in seeds) or len(set(seeds)) != len(seeds):
        shown = seeds if len(seeds) <= 20 else f"{seeds[:20]} and {len(seeds) - 20} more"
        raise ValueError(f"explicit seeds must be distinct integers in [0, {INT32_MAX}], got {shown}")
    return seeds


def first_seeds(seeds: int | list[int] | AdaptiveSeeds) -> list[int]:
    """The seeds every cell starts with (all of them, unless adaptive)."""
    if isinstance(seeds, AdaptiveSeeds):
        return list(range(seeds.adaptive.first, seeds.adaptive.first + seeds.adaptive.min))
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def most_seeds(seeds: int | list[int] | AdaptiveSeeds) -> int:
    """The most seeds a cell may train, without listing them (a count can be large)."""
    if isinstance(seeds, AdaptiveSeeds):
        return seeds.adaptive.max
    return seeds if isinstance(seeds, int) else len(seeds)


def adaptive_rule(spec: dict[str, Any]) -> Adaptive | None:
    """The adaptive rule of a stored (resolved) spec, or None for a fixed number of seeds."""
    seeds = spec.get("seeds")
    return AdaptiveSeeds.model_validate(seeds).adaptive if isinstance(seeds, dict) else None
