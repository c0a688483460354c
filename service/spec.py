"""The sweep spec a user submits, its validation, and its resolution into trainer configs.

Validation has two layers. Pydantic checks the structure (unknown keys, types, ranges); then the
trainers' registries check the task and the clipping methods with their parameters. Both report
errors in one shape, `{"loc": [...], "msg": ..., "type": ...}`, with the field path in `loc`, so the
API answers them alike with 422 and the CLI prints them alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainers.clipping import CLIPPERS, arm_label, build_clipper
from trainers.config import (
    ClippingConfig,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
)
from trainers.errors import ConfigError
from trainers.tasks import build_task


class SpecError(ValueError):
    """A spec that cannot run. `errors` are dicts with loc (a field path), msg and type."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


class _Strict(BaseModel):
    # strict: "0.5" is not a learning rate; allow_inf_nan=False: neither is NaN.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TaskSpec(_Strict):
    name: str = Field(description="A registered task (GET /api/v1/tasks lists them).")
    params: dict[str, Any] = Field(default_factory=dict, description="The task's parameters.")


class OptimizerSpec(_Strict):
    """sgd uses momentum and nesterov; adam and adamw use beta1, beta2 and eps. weight_decay unset
    means 0 for sgd and adam, 0.01 for adamw. warmup_steps ramps the learning rate up linearly."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    beta1: float = Field(0.9, ge=0.0, lt=1.0)
    beta2: float = Field(0.999, ge=0.0, lt=1.0)
    eps: float = Field(1e-8, gt=0.0)
    weight_decay: float | None = Field(None, ge=0.0)
    warmup_steps: int = Field(0, ge=0)


class ClippingSpec(BaseModel):
    """One arm: `method` plus that method's parameters at the same level, e.g.
    `{"method": "norm", "max_norm": 1.0}`. The parameters are checked by the method itself."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    method: str = Field(description=f"A registered clipping method: {sorted(CLIPPERS)}.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BudgetSpec(_Strict):
    max_steps: int = Field(1000, ge=1, le=10_000_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)


class DivergenceSpec(_Strict):
    loss_factor: float = Field(100.0, gt=1.0, description="Diverged when loss > factor × initial loss.")
    grad_norm_limit: float = Field(1.0e10, gt=0.0, description="Diverged when the pre-clip norm exceeds it.")


class ConvergenceSpec(_Strict):
    target_loss: float | None = Field(None, gt=0.0, description="Unset: the task's default target.")
    eval_every: int = Field(50, ge=1)


class ResourcesSpec(_Strict):
    cpus_per_trial: float = Field(1.0, gt=0.0)
    gpus_per_trial: float = Field(0.0, ge=0.0)
    max_seeds_per_trial: int = Field(64, ge=1, description="Seeds trained together in one trial.")
    max_concurrent_trials: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _default_arms() -> list[ClippingSpec]:
    return [ClippingSpec(method="none"), ClippingSpec(method="norm", max_norm=1.0)]


class SweepSpec(_Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    task: TaskSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    learning_rates: list[float] = Field(min_length=1, max_length=1000)
    clipping: list[ClippingSpec] = Field(default_factory=_default_arms, min_length=1, max_length=100)
    seeds: int | list[int] = Field(description="How many seeds (0..n-1), or an explicit list.")
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    divergence: DivergenceSpec = Field(default_factory=DivergenceSpec)
    convergence: ConvergenceSpec = Field(default_factory=ConvergenceSpec)
    record_every: int = Field(10, ge=1, description="Keep every n-th step's point (events always).")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

    @field_validator("learning_rates")
    @classmethod
    def _positive_distinct(cls, lrs: list[float]) -> list[float]:
        for lr in lrs:
            if lr <= 0:
                raise ValueError(f"every learning rate must be > 0, got {lr}")
        if len(set(lrs)) != len(lrs):
            raise ValueError(f"learning rates must be distinct, got {lrs}")
        return lrs

    @field_validator("seeds")
    @classmethod
    def _valid_seeds(cls, seeds: int | list[int]) -> int | list[int]:
        if isinstance(seeds, int):
            if seeds < 1:
                raise ValueError(f"seeds must be >= 1 (how many) or a list of seeds, got {seeds}")
            return seeds
        if not seeds:
            raise ValueError("an explicit seed list must not be empty")
        if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
            raise ValueError(f"explicit seeds must be distinct integers >= 0, got {seeds}")
        return seeds

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def run_count(self) -> int:
        return len(self.learning_rates) * len(self.clipping) * len(self.seed_list)


@dataclass(frozen=True)
class Cell:
    """One (learning rate, clipping arm) point of the grid, with its ready-to-run config."""

    index: int
    lr: float
    clipping: ClippingConfig
    config: TrainConfig


def _config_error(loc: Sequence[str | int], exc: ConfigError) -> dict[str, Any]:
    return {"loc": [*loc, *exc.path.split(".")], "msg": exc.message, "type": "value_error"}


def parse_spec(data: Any) -> SweepSpec:
    """Validate and resolve a spec given as plain data (parsed JSON or YAML)."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_errors(exc.errors())) from None
    return resolve_spec(spec)


def resolve_spec(spec: SweepSpec) -> SweepSpec:
    """Check what pydantic cannot (the task and each arm against the trainers' registries) and
    return the spec with every task and clipping parameter spelled out, defaults included, so the
    stored spec says exactly what ran and `max_norm: 1` and `max_norm: 1.0` are the same arm."""
    errors: list[dict[str, Any]] = []
    try:
        OptimizerConfig(**spec.optimizer.model_dump())
    except ConfigError as exc:
        errors.append(_config_error(["optimizer"], exc))
    task_params: dict[str, Any] = spec.task.params
    try:
        task_params = asdict(build_task(spec.task.name, spec.task.params).params)
    except ConfigError as exc:
        errors.append(_config_error(["task"], exc))
    arms: list[ClippingSpec] = []
    seen: dict[str, int] = {}
    for i, arm in enumerate(spec.clipping):
        try:
            params = asdict(build_clipper(arm.method, arm.params).params)
        except ConfigError as exc:
            # Clipping parameters sit beside `method`, not under a `params` key.
            path = exc.path.removeprefix("params.")
            errors.append(_config_error(["clipping", i], ConfigError(path, exc.message)))
            continue
        label = arm_label(ClippingConfig(arm.method, params))
        if label in seen:
            errors.append({"loc": ["clipping", i], "type": "value_error",
                           "msg": f"arm {label} is already listed at clipping[{seen[label]}]"})
        seen[label] = i
        arms.append(ClippingSpec(method=arm.method, **params))
    if errors:
        raise SpecError(errors)
    return spec.model_copy(update={"task": TaskSpec(name=spec.task.name, params=task_params),
                                   "clipping": arms})


def cells(spec: SweepSpec) -> list[Cell]:
    """The grid in a fixed order: learning rates outer, clipping arms inner."""
    out = []
    for lr in spec.learning_rates:
        for arm in spec.clipping:
            clipping = ClippingConfig(arm.method, arm.params)
            config = TrainConfig(
                task=spec.task.name,
                task_params=dict(spec.task.params),
                lr=lr,
                optimizer=OptimizerConfig(**spec.optimizer.model_dump()),
                clipping=clipping,
                max_steps=spec.budget.max_steps,
                batch_size=spec.budget.batch_size,
                divergence=DivergenceConfig(**spec.divergence.model_dump()),
                convergence=ConvergenceConfig(**spec.convergence.model_dump()),
                record_every=spec.record_every,
                device=spec.resources.device,
            )
            out.append(Cell(index=len(out), lr=lr, clipping=clipping, config=config))
    return out


def _allowed_keys(loc: Sequence[str | int]) -> list[str] | None:
    """The field names of the model that sits at `loc` inside a SweepSpec, if it is one."""
    model: Any = SweepSpec
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)]
        model = next((a for a in [annotation, *inner] if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return list(model.model_fields) if model is not None else None


def format_validation_errors(errors: Sequence[Any], prefix: Sequence[str | int] = ()) -> list[dict[str, Any]]:
    """Pydantic errors in our shape, with the allowed keys named where a key was unknown."""
    out = []
    for err in errors:
        loc = [part for part in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            if allowed is not None:
                msg = f"unknown key {loc[-1]!r}; allowed here: {allowed}"
        out.append({"loc": [*prefix, *loc], "msg": msg, "type": err["type"]})
    return out
