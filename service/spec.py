"""The sweep spec a user submits and its validation.

Validation has two layers. Pydantic checks the structure (unknown keys, types, ranges); then the
trainers' registries check the task and the clipping methods with their parameters. Both report
errors in one shape, `{"loc": [...], "msg": ..., "type": ...}`, with the field path in `loc`, so the
API answers them alike with 422 and the CLI prints them alike.

The defaults and ranges of everything that reaches training are the trainers' own: each spec field
below that mirrors a field of trainers/config.py takes its default and range from there
(`from_config`). Only what the service adds is written here: size limits, and where trials run.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from service.errors import SpecError
from service.spec_errors import format_validation_errors
from service.spec_rates import LearningRates, RateSearch, candidate_rates
from service.spec_seeds import (  # noqa: F401  (INT32_MAX: the API's bounds import it from here)
    INT32_MAX,
    Adaptive,
    AdaptiveSeeds,
    Seeds,
    Strict,
    check_seeds,
    first_seeds,
    most_seeds,
)
from trainers.clipping import BASELINE, CLIPPERS, arm_label, build_clipper
from trainers.config import (
    DEVICES,
    OPTIMIZERS,
    ClippingConfig,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
    field_bounds,
)
from trainers.errors import ConfigError
from trainers.tasks import build_task


def from_config(config_type: type, name: str, **more: Any) -> Any:
    """A pydantic Field with the default and range a trainers config declares for `name`; `more`
    adds what only the service limits (say an upper bound on steps) or describes."""
    [declared] = [f for f in fields(config_type) if f.name == name]
    default = ... if declared.default is MISSING else declared.default
    return Field(default, **field_bounds(config_type, name), **more)


_Strict = Strict


def _nul_in(value: Any, path: tuple[str | int, ...] = ()) -> tuple[str | int, ...] | None:
    """Where the first text holding a NUL character sits in plain data (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return (*path, key)
        found = _nul_in(item, (*path, key))
        if found is not None:
            return found
    return None


class TaskSpec(_Strict):
    name: str = Field(max_length=100, description="A registered task (GET /api/v1/tasks lists them).")
    params: dict[str, Any] = Field(default_factory=dict, description="The task's parameters.")


class OptimizerSpec(_Strict):
    """sgd uses momentum and nesterov; adam and adamw use beta1, beta2 and eps. weight_decay unset
    means 0 for sgd and adam, 0.01 for adamw. warmup_steps ramps the learning rate up linearly."""

    name: Literal[OPTIMIZERS] = from_config(OptimizerConfig, "name")  # type: ignore[valid-type]
    momentum: float = from_config(OptimizerConfig, "momentum")
    nesterov: bool = from_config(OptimizerConfig, "nesterov")
    beta1: float = from_config(OptimizerConfig, "beta1")
    beta2: float = from_config(OptimizerConfig, "beta2")
    eps: float = from_config(OptimizerConfig, "eps")
    weight_decay: float | None = from_config(OptimizerConfig, "weight_decay")
    warmup_steps: int = from_config(OptimizerConfig, "warmup_steps")


class ClippingSpec(BaseModel):
    """One arm: `method` plus that method's parameters at the same level, e.g.
    `{"method": "norm", "max_norm": 1.0}`. The parameters are checked by the method itself."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    method: str = Field(max_length=50, description=f"A registered clipping method: {sorted(CLIPPERS)}.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class BudgetSpec(_Strict):
    max_steps: int = from_config(TrainConfig, "max_steps", le=10_000_000)
    batch_size: int = from_config(TrainConfig, "batch_size", le=1_000_000)


class DivergenceSpec(_Strict):
    loss_factor: float = from_config(DivergenceConfig, "loss_factor",
                                     description="Diverged when loss > factor × initial loss.")
    grad_norm_limit: float = from_config(DivergenceConfig, "grad_norm_limit",
                                         description="Diverged when the pre-clip norm exceeds it.")


class ConvergenceSpec(_Strict):
    target_loss: float | None = from_config(ConvergenceConfig, "target_loss",
                                            description="Unset: the task's default target.")
    eval_every: int = from_config(ConvergenceConfig, "eval_every")


class ResourcesSpec(_Strict):
    """Where and how a sweep's trials run: Ray resources, chunking, the device."""

    # Ray schedules in units of 1/10,000 of a CPU or GPU; a share below 1% is no use to a trial.
    cpus_per_trial: float = Field(1.0, ge=0.01, le=1024.0)
    gpus_per_trial: float = Field(0.0, ge=0.0, le=64.0, description="0, or at least 0.01.")
    max_seeds_per_trial: int = Field(64, ge=1, le=1_000_000, description="Seeds trained together in one trial.")
    max_concurrent_trials: int | None = Field(None, ge=1, le=100_000)
    # Unlike TrainConfig (whose default is the CPU), a sweep trains where its trials land.
    device: Literal[DEVICES] = "auto"  # type: ignore[valid-type]

    @field_validator("gpus_per_trial")
    @classmethod
    def _no_sliver_of_a_gpu(cls, gpus: float) -> float:
        if 0 < gpus < 0.01:
            raise ValueError(f"must be 0 or at least 0.01 (a share Ray can schedule), got {gpus}")
        return gpus


def _default_arms() -> list[ClippingSpec]:
    return [ClippingSpec(method=BASELINE), ClippingSpec(method="norm", max_norm=1.0)]


class SweepSpec(_Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    task: TaskSpec
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    # The validators below say what is wrong in words; the schema states the same constraints.
    learning_rates: LearningRates = Field(description=(
        "The learning rates, or {search: {low, high, ratio}}: each arm's highest stable one found on that log "
        "grid by bisection, each probe decided by adaptive seeds."))
    clipping: list[ClippingSpec] = Field(default_factory=_default_arms, min_length=1, max_length=100)
    # Optional only for a search, which decides every probe with adaptive seeds anyway: a user
    # states the range (and, if not 5%, the tolerance) and nothing else. Filled in below, so the
    # stored spec says exactly what ran.
    seeds: Seeds | None = Field(None, validate_default=True, description=(
        "How many seeds (0..n-1), an explicit list, or {adaptive: {min, max, batch, tolerance, alpha}}: "
        "seeds added round by round until each learning rate's questions are decided. Required with a list "
        "of learning rates; with a search, left out means {adaptive: {}} (16 at first, at most 512, 5%)."))
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    divergence: DivergenceSpec = Field(default_factory=DivergenceSpec)
    convergence: ConvergenceSpec = Field(default_factory=ConvergenceSpec)
    record_every: int = from_config(TrainConfig, "record_every",
                                    description="Keep every n-th step's point (events always).")
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        where = _nul_in(data)
        if where is not None:
            raise ValueError(f"text must not contain the NUL character (\\x00); found at "
                             f"{'.'.join(map(str, where))}")
        return data

    @field_validator("learning_rates")
    @classmethod
    def _positive_distinct(cls, lrs: list[float] | RateSearch) -> list[float] | RateSearch:
        if isinstance(lrs, RateSearch):
            return lrs
        for lr in lrs:
            if lr <= 0:
                raise ValueError(f"every learning rate must be > 0, got {lr}")
        if len(set(lrs)) != len(lrs):
            raise ValueError(f"learning rates must be distinct, got {lrs}")
        return lrs

    @field_validator("seeds")
    @classmethod
    def _valid_seeds(cls, seeds: int | list[int] | AdaptiveSeeds | None,
                     info: ValidationInfo) -> int | list[int] | AdaptiveSeeds:
        if seeds is None:
            if isinstance(info.data.get("learning_rates"), RateSearch):
                return AdaptiveSeeds(adaptive=Adaptive())
            raise ValueError("seeds is required: how many (e.g. 80), an explicit list, or {adaptive: {min: 16, "
                             "max: 512, batch: 16}}; only a search over learning_rates may leave it out")
        return check_seeds(seeds)

    @property
    def seed_list(self) -> list[int]:
        """The seeds every cell starts with: all of them, unless adaptive."""
        return first_seeds(self.seeds)

    @property
    def seed_count(self) -> int:
        """The most seeds a cell may train (a count can be large: check it first)."""
        return most_seeds(self.seeds)

    @model_validator(mode="after")
    def _search_needs_adaptive_seeds(self) -> SweepSpec:
        if isinstance(self.learning_rates, RateSearch) and not isinstance(self.seeds, AdaptiveSeeds):
            raise ValueError("a search over learning rates decides each probe with adaptive seeds: give "
                             "seeds: {adaptive: {min: 16, max: 512, batch: 16}} (or your own numbers)")
        return self

    @property
    def run_count(self) -> int:
        """The most runs the sweep may train (every candidate learning rate, every seed it may get)."""
        return len(candidate_rates(self.learning_rates)) * len(self.clipping) * self.seed_count


def _config_error(loc: Sequence[str | int], exc: ConfigError) -> dict[str, Any]:
    return {"loc": [*loc, *exc.path.split(".")], "msg": exc.message, "type": "value_error"}


def parse_spec(data: Any) -> SweepSpec:
    """Validate and resolve a spec given as plain data (parsed JSON or YAML)."""
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_errors(exc.errors(), root=SweepSpec) + registry_errors(data)) from None
    return resolve_spec(spec)


def registry_errors(data: Any) -> list[dict[str, Any]]:
    """The registry checks (the task and each arm) of the parts of a spec that are well formed,
    for a spec that failed validation elsewhere: one answer lists every problem, instead of the
    unknown task only once the missing `seeds` is fixed."""
    errors: list[dict[str, Any]] = []
    if not isinstance(data, dict):
        return errors
    try:
        _task_params(TaskSpec.model_validate(data.get("task")), errors)
    except ValidationError:
        pass  # a malformed task is among the validation errors already
    arms = data.get("clipping")
    for i, arm in enumerate(arms if isinstance(arms, list) else []):
        try:
            _arm_params(i, ClippingSpec.model_validate(arm), errors)
        except ValidationError:
            pass
    return errors


def _task_params(task: TaskSpec, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's parameters with every default spelled out; as given, with an error, if it is wrong."""
    try:
        return asdict(build_task(task.name, task.params).params)
    except ConfigError as exc:
        errors.append(_config_error(["task"], exc))
        return task.params


def _arm_params(i: int, arm: ClippingSpec, errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The arm's parameters with every default spelled out; None, with an error, if it is wrong."""
    try:
        return asdict(build_clipper(arm.method, arm.params).params)
    except ConfigError as exc:  # clipping parameters sit beside `method`, not under a `params` key
        errors.append(_config_error(["clipping", i], ConfigError(exc.path.removeprefix("params."), exc.message)))
        return None


def resolve_spec(spec: SweepSpec) -> SweepSpec:
    """Check what pydantic cannot (the task and each arm against the trainers' registries) and
    return the spec with every task and clipping parameter spelled out, defaults included, so the
    stored spec says exactly what ran and `max_norm: 1` and `max_norm: 1.0` are the same arm."""
    errors: list[dict[str, Any]] = []
    try:
        OptimizerConfig(**spec.optimizer.model_dump())
    except ConfigError as exc:
        errors.append(_config_error(["optimizer"], exc))
    task_params = _task_params(spec.task, errors)
    arms: list[ClippingSpec] = []
    seen: dict[str, int] = {}
    for i, arm in enumerate(spec.clipping):
        params = _arm_params(i, arm, errors)
        if params is None:
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
