"""Frozen configuration of one training: what the loop needs, and nothing it would read elsewhere.

Trainers never read the environment or a settings object. The service resolves a sweep spec into
these dataclasses; the Ray adapter turns Tune's plain-dict config back into them with `from_dict`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping


class ConfigError(ValueError):
    """A configuration value is out of range or unknown. `path` names the field, dotted."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class OptimizerConfig:
    """sgd (momentum, nesterov), adam or adamw, with an optional linear learning-rate warm-up over
    the first `warmup_steps` updates. `weight_decay` None means the optimizer's usual default
    (0 for sgd and adam, 0.01 for adamw, decoupled as in Loshchilov & Hutter)."""

    name: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float | None = None
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ConfigError("name", f"unknown optimizer {self.name!r}; known: {list(OPTIMIZERS)}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError("momentum", f"must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0.0):
            raise ConfigError("nesterov", "nesterov momentum needs optimizer sgd with momentum > 0")
        if self.name != "sgd" and self.momentum != 0.0:
            raise ConfigError("momentum", f"momentum belongs to sgd; {self.name} uses beta1")
        for field_name in ("beta1", "beta2"):
            value = getattr(self, field_name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(field_name, f"must be in [0, 1), got {value!r}")
        if not self.eps > 0:
            raise ConfigError("eps", f"must be > 0, got {self.eps!r}")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay!r}")
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps", f"must be >= 0, got {self.warmup_steps!r}")

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return 0.01 if self.name == "adamw" else 0.0


@dataclass(frozen=True)
class ClippingConfig:
    """One clipping arm: a method name from the clipper registry and its parameters."""

    method: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A short, stable name for the arm, e.g. `norm(max_norm=1.0)`: the method's main (first)
        parameter, and any other whose value differs from its default, e.g.
        `norm(max_norm=1.0,norm_type=inf)`. Unknown methods list every parameter given."""
        from trainers.clipping import CLIPPERS  # the registry imports this module

        cls = CLIPPERS.get(self.method)
        if cls is None:
            shown = dict(sorted(self.params.items()))
        else:
            shown = {f.name: self.params.get(f.name, f.default) for i, f in enumerate(fields(cls.Params))
                     if i == 0 or (f.name in self.params and self.params[f.name] != f.default)}
        if not shown:
            return self.method
        return f"{self.method}({','.join(f'{k}={v}' for k, v in shown.items())})"


@dataclass(frozen=True)
class DivergenceConfig:
    """When a run counts as diverged. A spike that stays under these limits and recovers is not."""

    loss_factor: float = 100.0
    grad_norm_limit: float = 1.0e10

    def __post_init__(self) -> None:
        if not self.loss_factor > 1.0:
            raise ConfigError("loss_factor", f"must be > 1, got {self.loss_factor!r}")
        if not self.grad_norm_limit > 0.0:
            raise ConfigError("grad_norm_limit", f"must be > 0, got {self.grad_norm_limit!r}")


@dataclass(frozen=True)
class ConvergenceConfig:
    """`target_loss` None means the task's own default target."""

    target_loss: float | None = None
    eval_every: int = 50

    def __post_init__(self) -> None:
        if self.target_loss is not None and not self.target_loss > 0.0:
            raise ConfigError("target_loss", f"must be > 0, got {self.target_loss!r}")
        if self.eval_every < 1:
            raise ConfigError("eval_every", f"must be >= 1, got {self.eval_every!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training except the seed: one cell of a sweep."""

    task: str
    lr: float
    task_params: Mapping[str, Any] = field(default_factory=dict)
    optimizer: OptimizerConfig = OptimizerConfig()
    clipping: ClippingConfig = ClippingConfig()
    max_steps: int = 1000
    batch_size: int = 32
    divergence: DivergenceConfig = DivergenceConfig()
    convergence: ConvergenceConfig = ConvergenceConfig()
    record_every: int = 10
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.lr > 0.0:
            raise ConfigError("lr", f"must be > 0, got {self.lr!r}")
        if self.max_steps < 1:
            raise ConfigError("max_steps", f"must be >= 1, got {self.max_steps!r}")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be >= 1, got {self.batch_size!r}")
        if self.record_every < 1:
            raise ConfigError("record_every", f"must be >= 1, got {self.record_every!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError("device", f"must be one of ['auto', 'cpu', 'cuda'], got {self.device!r}")

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
