"""Frozen configuration of one training: what the loop needs, and nothing it would read elsewhere.

Trainers never read the environment or a settings object. The service resolves a sweep spec into
these dataclasses; the Ray adapter turns Tune's plain-dict config back into them with `from_dict`.

Each field's default and allowed range are declared here once (`bounded`): `__post_init__` checks
the range, and the service derives its API schema from the same declaration.
"""

from __future__ import annotations

import hashlib
import json
import operator
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from trainers.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda")

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def bounded(default: Any = MISSING, **bounds: float) -> Any:
    """A dataclass field with its default (none: required) and its range (gt, ge, lt, le)."""
    unknown = set(bounds) - set(_COMPARE)
    if unknown:
        raise TypeError(f"unknown bounds {sorted(unknown)}; use {sorted(_COMPARE)}")
    return field(default=default, metadata={"bounds": bounds})


def field_bounds(config_type: type, name: str) -> dict[str, float]:
    """The range declared for a field with `bounded` ({} if it has none)."""
    return dict({f.name: f for f in fields(config_type)}[name].metadata.get("bounds", {}))


_SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def _range_text(bounds: Mapping[str, float]) -> str:
    """`in [0, 1)` for a range bounded on both sides, `> 0` for one bound."""
    if len(bounds) == 2:
        low = "[" if "ge" in bounds else "("
        high = "]" if "le" in bounds else ")"
        lower = bounds.get("ge", bounds.get("gt"))
        upper = bounds.get("le", bounds.get("lt"))
        return f"in {low}{lower:g}, {upper:g}{high}"
    [(op, limit)] = bounds.items()
    return f"{_SYMBOLS[op]} {limit:g}"


def check_bounds(config: Any) -> None:
    """Raise ConfigError for the first field outside its declared range; None is always allowed
    (it means "the default of whoever reads it"). NaN is outside every range."""
    for f in fields(config):
        bounds = f.metadata.get("bounds")
        value = getattr(config, f.name)
        if bounds and value is not None and not all(_COMPARE[op](value, limit) for op, limit in bounds.items()):
            raise ConfigError(f.name, f"must be {_range_text(bounds)}, got {value!r}")


@dataclass(frozen=True)
class OptimizerConfig:
    """sgd (momentum, nesterov), adam or adamw, with an optional linear learning-rate warm-up over
    the first `warmup_steps` updates. `weight_decay` None means the optimizer's usual default
    (0 for sgd and adam, 0.01 for adamw, decoupled as in Loshchilov & Hutter)."""

    name: str = "sgd"
    momentum: float = bounded(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    beta1: float = bounded(0.9, ge=0.0, lt=1.0)
    beta2: float = bounded(0.999, ge=0.0, lt=1.0)
    eps: float = bounded(1e-8, gt=0.0)
    weight_decay: float | None = bounded(None, ge=0.0)
    warmup_steps: int = bounded(0, ge=0, le=10_000_000)

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError("name", f"unknown optimizer {self.name!r}; known: {list(OPTIMIZERS)}")
        check_bounds(self)
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ConfigError("nesterov", "nesterov momentum needs optimizer sgd with momentum > 0")
        if self.name != "sgd" and self.momentum != 0.0:
            raise ConfigError("momentum", f"momentum belongs to sgd; {self.name} uses beta1")

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return 0.01 if self.name == "adamw" else 0.0


@dataclass(frozen=True)
class ClippingConfig:
    """One clipping arm: a method name from the clipper registry and its parameters. Its short
    name for people is `trainers.clipping.arm_label`."""

    method: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DivergenceConfig:
    """When a run counts as diverged. A spike that stays under these limits and recovers is not."""

    loss_factor: float = bounded(100.0, gt=1.0)
    grad_norm_limit: float = bounded(1.0e10, gt=0.0)

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class ConvergenceConfig:
    """`target_loss` None means the task's own default target."""

    target_loss: float | None = bounded(None, gt=0.0)
    eval_every: int = bounded(50, ge=1)

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training except the seed: one cell of a sweep."""

    task: str
    lr: float = bounded(gt=0.0)
    task_params: Mapping[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = OptimizerConfig()
    clipping: ClippingConfig = ClippingConfig()
    max_steps: int = bounded(1000, ge=1)
    batch_size: int = bounded(32, ge=1)
    divergence: DivergenceConfig = DivergenceConfig()
    convergence: ConvergenceConfig = ConvergenceConfig()
    record_every: int = bounded(10, ge=1)
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.device not in DEVICES:
            raise ConfigError("device", f"must be one of {sorted(DEVICES)}, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-able dict (for Ray's param space and for storing what was run)."""
        out = asdict(self)
        out["task_params"] = dict(self.task_params)
        out["clipping"]["params"] = dict(self.clipping.params)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        data = dict(data)
        return cls(
            task=data.pop("task"),
            lr=float(data.pop("lr")),
            task_params=dict(data.pop("task_params", {})),
            optimizer=OptimizerConfig(**data.pop("optimizer", {})),
            clipping=ClippingConfig(**data.pop("clipping", {})),
            divergence=DivergenceConfig(**data.pop("divergence", {})),
            convergence=ConvergenceConfig(**data.pop("convergence", {})),
            **data,
        )

    def with_device(self, device: str) -> TrainConfig:
        return replace(self, device=device)

    def content_hash(self) -> str:
        """A stable name for this configuration: the same configuration has the same hash in
        any sweep, on any machine (the SHA-256 of its JSON with sorted keys). Two sweeps' cells
        are the same training exactly when their hashes are equal."""
        return config_hash(self.to_dict())


def config_hash(config: Mapping[str, Any]) -> str:
    """The SHA-256 of a config dict (`TrainConfig.to_dict()`) written as compact JSON with
    sorted keys. Python writes a float as its shortest round-tripping repr on every platform."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()
