"""The clipper registry: built-in gradient clipping methods by name."""

from __future__ import annotations

from typing import Any, Mapping

from trainers.clipping.base import ClipContext, Clipper, ClipTelemetry, per_seed, scale_, seed_norms
from trainers.clipping.elementwise import ValueClipper
from trainers.clipping.history import AutoClipper, ZClipper
from trainers.clipping.simple import GlobalNormClipper, NoClipper, NormParams
from trainers.clipping.unitwise import AGCClipper, PerLayerClipper
from trainers.config import ConfigError

CLIPPERS: dict[str, type[Clipper]] = {
    cls.name: cls
    for cls in (NoClipper, GlobalNormClipper, ValueClipper, PerLayerClipper, AGCClipper, AutoClipper, ZClipper)
}


def build_clipper(method: str, params: Mapping[str, Any] | None = None) -> Clipper:
    try:
        cls = CLIPPERS[method]
    except KeyError:
        raise ConfigError("method", f"unknown clipping method {method!r}; known: {sorted(CLIPPERS)}") from None
    return cls(params)


__all__ = ["CLIPPERS", "ClipContext", "ClipTelemetry", "Clipper", "NormParams", "build_clipper", "per_seed",
           "scale_", "seed_norms"]
