"""Validation errors in the one shape the API and the CLI answer: `{"loc": [...], "msg": ...,
"type": ...}`, with the allowed keys named where a key was unknown, and the YAML pitfall named
where a number arrived as text."""

from __future__ import annotations

from typing import Any, Sequence, get_args

from pydantic import BaseModel

# Fields that take one of several forms, with the tags pydantic puts in an error's location.
_FORMS = {"seeds": ("count", "list", "adaptive"), "learning_rates": ("list", "search")}


def number_as_text(value: Any) -> bool:
    """A string that reads as a number: the mark of a YAML 1.1 reader (or a quoted number)."""
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _types_in(annotation: Any) -> list[type]:
    """The classes an annotation names, through unions and Annotated: `int | Model` → [int, Model]."""
    if isinstance(annotation, type) and not get_args(annotation):
        return [annotation]
    return [t for arg in get_args(annotation) for t in _types_in(arg)]


def _allowed_keys(root: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names of the model that sits at `loc` inside `root`, if it is one."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = next((a for a in _types_in(field.annotation) if issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return list(model.model_fields) if model is not None else None


def format_validation_errors(errors: Sequence[Any], prefix: Sequence[str | int] = (),
                             root: type[BaseModel] | None = None) -> list[dict[str, Any]]:
    """Pydantic errors in our shape; where a key inside `root` was unknown, the allowed keys named."""
    out = []
    for err in errors:
        loc = list(err["loc"])
        if loc[1:2] and _FORMS.get(loc[0]) and loc[1] in _FORMS[loc[0]]:
            del loc[1]  # the tag of the form it was read as (spec_seeds.py, spec_rates.py), not a key
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, loc[:-1]) if root is not None else None
            if allowed is not None:
                msg = f"unknown key {loc[-1]!r}; allowed here: {allowed}"
        elif number_as_text(err.get("input")):
            msg += (f", got the text {err['input']!r}: send it as a number. YAML 1.1 readers (PyYAML) read "
                    "1.0e10 as text; write 1.0e+10")
        out.append({"loc": [*prefix, *loc], "msg": msg, "type": err["type"]})
    return out
