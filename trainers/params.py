"""Turning a user's `params` mapping into a task's or clipper's frozen parameter dataclass.

Unknown keys and wrong types are refused with a ConfigError that names the parameter and what is
allowed, so the service can answer 422 with a field path and a CLI user sees the same message.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, ClassVar, Mapping, TypeVar

from trainers.errors import ConfigError

P = TypeVar("P")


class Parametrized:
    """Base of registry entries (tasks, clippers): a `name`, a frozen `Params` dataclass, and
    construction from a user's mapping with the validation of `build_params`."""

    name: ClassVar[str]
    Params: ClassVar[type]

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params = build_params(self.Params, params or {})

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, first docstring paragraph and parameters, for `GET /tasks` and the like."""
        first_paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
        return {"name": cls.name, "doc": " ".join(first_paragraph.split()), "params": describe(cls.Params)}


def describe(params_type: type) -> list[dict[str, Any]]:
    """Name, type and default of each parameter, for listings (`GET /tasks`, docs)."""
    hints = typing.get_type_hints(params_type)
    out = []
    for f in dataclasses.fields(params_type):
        hint = hints[f.name]
        out.append({"name": f.name, "type": getattr(hint, "__name__", str(hint)), "default": f.default})
    return out


def build_params(params_type: type[P], values: Mapping[str, Any], path: str = "params") -> P:
    """Validate `values` against the dataclass `params_type` and construct it."""
    if not isinstance(values, Mapping):
        raise ConfigError(path, f"must be an object, got {type(values).__name__}")
    hints = typing.get_type_hints(params_type)
    names = [f.name for f in dataclasses.fields(params_type)]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"{path}.{key}", f"unknown parameter; known: {names}")
        kwargs[key] = _coerce(hints[key], value, f"{path}.{key}")
    try:
        return params_type(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path}.{exc.path}", exc.message) from None


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(path, f"must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(path, f"must be a finite number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(path, f"must be a string, got {value!r}")
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in typing.get_args(hint):
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin is typing.Literal:
        allowed = list(typing.get_args(hint))
        for option in allowed:
            # The allowed spelling, so 2.0 and 2 are one value (arms are compared by their labels).
            if value == option and isinstance(value, bool) == isinstance(option, bool):
                return option
        raise ConfigError(path, f"must be one of {allowed}, got {value!r}")
    return value
