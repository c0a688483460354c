"""The clipper registry: built-in gradient clipping methods by name, and the arms' labels."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from trainers.clipping.base import ClipContext, Clipper, ClipTelemetry, per_seed, scale_, seed_norms
from trainers.clipping.elementwise import ValueClipper
from trainers.clipping.history import AutoClipper, ZClipper
from trainers.clipping.simple import GlobalNormClipper, NoClipper, NormParams
from trainers.clipping.unitwise import AGCClipper, PerLayerClipper
from trainers.config import ClippingConfig
from trainers.errors import ConfigError

CLIPPERS: dict[str, type[Clipper]] = {
    cls.name: cls
    for cls in (NoClipper, GlobalNormClipper, ValueClipper, PerLayerClipper, AGCClipper, AutoClipper, ZClipper)
}

# The arm without clipping: the baseline every other arm is compared with, seed by seed.
BASELINE = NoClipper.name


def build_clipper(method: str, params: Mapping[str, Any] | None = None) -> Clipper:
    try:
        cls = CLIPPERS[method]
    except KeyError:
        raise ConfigError("method", f"unknown clipping method {method!r}; known: {sorted(CLIPPERS)}") from None
    return cls(params)


def arm_label(arm: ClippingConfig) -> str:
    """A short, stable name for an arm, e.g. `norm(max_norm=1.0)`: the method's main (first)
    parameter, and any other whose value differs from its default, e.g.
    `norm(max_norm=1.0,norm_type=inf)`. Unknown methods list every parameter given."""
    cls = CLIPPERS.get(arm.method)
    if cls is None:
        shown = dict(sorted(arm.params.items()))
    else:
        shown = {f.name: arm.params.get(f.name, f.default) for i, f in enumerate(fields(cls.Params))
                 if i == 0 or (f.name in arm.params and arm.params[f.name] != f.default)}
    if not shown:
        return arm.method
    return f"{arm.method}({','.join(f'{k}={v}' for k, v in shown.items())})"


__all__ = ["BASELINE", "CLIPPERS", "ClipContext", "ClipTelemetry", "Clipper", "NormParams", "arm_label",
           "build_clipper", "per_seed", "scale_", "seed_norms"]
