"""Parameter and configuration validation (trainers/params.py, trainers/config.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from tests.trainers.helpers import SMALL_TASK, small_config
from trainers import (
    TASKS,
    ClippingConfig,
    ConfigError,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
    arm_label,
    build_task,
    run_seed,
)
from trainers.clipping import NormParams
from trainers.params import build_params, describe
from trainers.tasks.adding import AddingParams


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("seq_len", "10", "must be an integer"),       # string for int
    ("seq_len", True, "must be an integer"),       # bool for int
    ("hidden", True, "must be an integer"),        # a bool that would pass the range check
    ("seq_len", 10.0, "must be an integer"),       # float for int
    ("hidden", None, "must be an integer"),
    ("init_std", math.nan, "must be a finite number"),  # NaN for float
    ("init_std", math.inf, "must be a finite number"),
    ("init_std", "0.1", "must be a finite number"),
    ("init_std", False, "must be a finite number"),     # bool for float
    ("init", "xavier", "must be one of ['basic_tanh', 'smart_tanh']"),  # not one of the Literal's values
    ("recurrent_gain", "2", "must be a finite number"),
    ("recurrent_gain", math.inf, "must be a finite number"),
])
def test_task_params_wrong_type_names_the_dotted_path(key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_task("adding", {key: value})
    assert info.value.path == f"params.{key}"
    assert info.value.message == f"{expected}, got {value!r}"


@pytest.mark.parametrize(("path", "expected"), [("params", "params.seq_len"),
                                                ("task.params", "task.params.seq_len"),
                                                ("clipping.0", "clipping.0.seq_len")])
def test_build_params_prefixes_its_path(path: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_params(AddingParams, {"seq_len": "long"}, path=path)
    assert info.value.path == expected


@pytest.mark.parametrize(("key", "value"), [
    ("seq_len", 9), ("hidden", 0), ("init_std", 0.0), ("init_std", -0.1), ("eval_size", 0)])
def test_task_params_out_of_range_keep_the_dotted_path(key: str, value: Any) -> None:
    """A range error raised in __post_init__ is re-raised with the parameter's full path."""
    with pytest.raises(ConfigError) as info:
        build_task("adding", {key: value})
    assert info.value.path == f"params.{key}"
    assert str(value) in info.value.message


def test_task_params_unknown_key_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        build_task("adding", {"seqlen": 10})
    assert info.value.path == "params.seqlen"
    assert "['seq_len', 'hidden', 'init', 'init_std', 'recurrent_gain', 'eval_size']" in info.value.message


@pytest.mark.parametrize("values", [[("seq_len", 10)], "seq_len=10", 10])
def test_params_must_be_a_mapping(values: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build_params(AddingParams, values)
    assert info.value.path == "params"
    assert type(values).__name__ in info.value.message


def test_valid_params_are_coerced_and_defaults_filled() -> None:
    params = build_task("adding", {"seq_len": 12, "init_std": 1, "recurrent_gain": 2}).params
    assert params == AddingParams(seq_len=12, init_std=1.0, recurrent_gain=2.0)
    assert isinstance(params.init_std, float) and isinstance(params.recurrent_gain, float)
    assert build_task("adding", {"init": "smart_tanh"}).params.init == "smart_tanh"
    assert build_params(NormParams, {}) == NormParams(max_norm=1.0, norm_type=2)


def test_describe_lists_name_type_default() -> None:
    assert describe(AddingParams) == [
        {"name": "seq_len", "type": "int", "default": 50},
        {"name": "hidden", "type": "int", "default": 50},
        {"name": "init", "type": "Literal", "default": "basic_tanh"},
        {"name": "init_std", "type": "float", "default": 0.1},
        {"name": "recurrent_gain", "type": "float", "default": 1.0},
        {"name": "eval_size", "type": "int", "default": 500},
    ]


def test_unknown_task_lists_known_tasks() -> None:
    with pytest.raises(ConfigError) as info:
        build_task("addding")
    assert info.value.path == "name"
    assert "'addding'" in info.value.message
    assert str(sorted(TASKS)) in info.value.message


def test_training_an_unknown_task_fails_with_config_error() -> None:
    with pytest.raises(ConfigError, match=r"known: \['adding'"):
        run_seed(small_config(task="addding"), 0)


# ---- the frozen config dataclasses ---------------------------------------------------------

@pytest.mark.parametrize(("build", "path"), [
    (lambda: small_config(lr=0.0), "lr"),
    (lambda: small_config(lr=-1.0), "lr"),
    (lambda: small_config(lr=math.nan), "lr"),
    (lambda: small_config(max_steps=0), "max_steps"),
    (lambda: small_config(batch_size=0), "batch_size"),
    (lambda: small_config(record_every=0), "record_every"),
    (lambda: small_config(device="tpu"), "device"),
    (lambda: OptimizerConfig(name="rmsprop"), "name"),
    (lambda: OptimizerConfig(name="SGD"), "name"),
    (lambda: OptimizerConfig(momentum=1.0), "momentum"),
    (lambda: OptimizerConfig(momentum=-0.1), "momentum"),
    (lambda: OptimizerConfig(momentum=math.nan), "momentum"),
    (lambda: OptimizerConfig(nesterov=True), "nesterov"),
    (lambda: OptimizerConfig(name="adam", momentum=0.9), "momentum"),
    (lambda: OptimizerConfig(name="adamw", momentum=0.5), "momentum"),
    (lambda: OptimizerConfig(name="adam", nesterov=True), "nesterov"),
    (lambda: OptimizerConfig(name="adam", beta1=1.0), "beta1"),
    (lambda: OptimizerConfig(name="adam", beta1=-0.1), "beta1"),
    (lambda: OptimizerConfig(name="adamw", beta2=1.0), "beta2"),
    (lambda: OptimizerConfig(name="adamw", beta2=math.nan), "beta2"),
    (lambda: OptimizerConfig(name="adam", eps=0.0), "eps"),
    (lambda: OptimizerConfig(name="adam", eps=-1e-8), "eps"),
    (lambda: OptimizerConfig(name="adam", eps=math.nan), "eps"),
    (lambda: OptimizerConfig(weight_decay=-0.01), "weight_decay"),
    (lambda: OptimizerConfig(name="adamw", weight_decay=-1e-9), "weight_decay"),
    (lambda: OptimizerConfig(weight_decay=math.nan), "weight_decay"),
    (lambda: OptimizerConfig(warmup_steps=-1), "warmup_steps"),
    (lambda: DivergenceConfig(loss_factor=1.0), "loss_factor"),
    (lambda: DivergenceConfig(loss_factor=math.nan), "loss_factor"),
    (lambda: DivergenceConfig(grad_norm_limit=0.0), "grad_norm_limit"),
    (lambda: ConvergenceConfig(target_loss=0.0), "target_loss"),
    (lambda: ConvergenceConfig(target_loss=math.nan), "target_loss"),
    (lambda: ConvergenceConfig(eval_every=0), "eval_every"),
])
def test_config_out_of_range_names_the_field(build: Any, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")


def test_unknown_optimizer_lists_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        OptimizerConfig(name="rmsprop")
    assert info.value.path == "name"
    assert info.value.message == "unknown optimizer 'rmsprop'; known: ['sgd', 'adam', 'adamw']"


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_momentum_with_adam_is_refused_naming_the_field(name: str) -> None:
    """Adam's momentum is beta1: a `momentum` given with adam/adamw would silently do nothing."""
    with pytest.raises(ConfigError) as info:
        OptimizerConfig(name=name, momentum=0.9)
    assert info.value.path == "momentum"
    assert name in info.value.message and "beta1" in info.value.message


@pytest.mark.parametrize("config", [{"nesterov": True}, {"nesterov": True, "momentum": 0.0},
                                    {"name": "adam", "nesterov": True}, {"name": "adamw", "nesterov": True}])
def test_nesterov_needs_sgd_with_momentum(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        OptimizerConfig(**config)
    assert info.value.path == "nesterov"
    assert "momentum > 0" in info.value.message


@pytest.mark.parametrize(("field", "value"), [("weight_decay", -0.01), ("warmup_steps", -1),
                                              ("beta1", 1.0), ("beta2", -0.5), ("eps", 0.0)])
def test_optimizer_out_of_range_names_the_value(field: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        OptimizerConfig(name="adam", **{field: value})
    assert info.value.path == field
    assert info.value.message.endswith(f"got {value!r}")


@pytest.mark.parametrize("config", [
    OptimizerConfig(),
    OptimizerConfig(momentum=0.9, nesterov=True, weight_decay=0.0, warmup_steps=0),
    OptimizerConfig(momentum=0.0, warmup_steps=1),
    OptimizerConfig(name="adam", beta1=0.0, beta2=0.0, eps=1e-12, weight_decay=0.0),
    OptimizerConfig(name="adamw", beta1=0.95, beta2=0.98, eps=1e-6, weight_decay=0.1, warmup_steps=100),
], ids=repr)
def test_valid_optimizer_configs_are_accepted(config: OptimizerConfig) -> None:
    assert OptimizerConfig(**dataclasses.asdict(config)) == config


@pytest.mark.parametrize(("config", "decay"), [
    (OptimizerConfig(), 0.0),
    (OptimizerConfig(momentum=0.9), 0.0),
    (OptimizerConfig(name="adam"), 0.0),
    (OptimizerConfig(name="adamw"), 0.01),
    (OptimizerConfig(weight_decay=1e-4), 1e-4),
    (OptimizerConfig(name="adam", weight_decay=0.5), 0.5),
    (OptimizerConfig(name="adamw", weight_decay=0.0), 0.0),  # an explicit 0 is not the default
    (OptimizerConfig(name="adamw", weight_decay=0.2), 0.2),
], ids=repr)
def test_resolved_weight_decay(config: OptimizerConfig, decay: float) -> None:
    """None means the optimizer's usual default: 0.01 for adamw, 0 for sgd and adam."""
    assert config.resolved_weight_decay == decay
    assert type(config.resolved_weight_decay) is float


def test_optimizer_defaults() -> None:
    assert OptimizerConfig() == OptimizerConfig(name="sgd", momentum=0.0, nesterov=False, beta1=0.9,
                                                beta2=0.999, eps=1e-8, weight_decay=None, warmup_steps=0)


def test_config_error_is_a_value_error() -> None:
    """Callers that catch ValueError (argument parsing, pydantic validators) catch it too."""
    assert issubclass(ConfigError, ValueError)


# Between them, every OptimizerConfig field away from its default.
FULL_SGD = OptimizerConfig(momentum=0.9, nesterov=True, weight_decay=1e-4, warmup_steps=5)
FULL_ADAMW = OptimizerConfig(name="adamw", beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.05, warmup_steps=3)


def _full_config(optimizer: OptimizerConfig = FULL_SGD) -> TrainConfig:
    """A TrainConfig with every field away from its default."""
    return TrainConfig(
        task="adding",
        lr=0.05,
        task_params={"seq_len": 20, "hidden": 4, "init": "smart_tanh", "recurrent_gain": 1.5},
        optimizer=optimizer,
        clipping=ClippingConfig("norm", {"max_norm": 0.5}),
        max_steps=7,
        batch_size=3,
        divergence=DivergenceConfig(loss_factor=10.0, grad_norm_limit=1.0e4),
        convergence=ConvergenceConfig(target_loss=0.02, eval_every=3),
        record_every=2,
        device="auto",
    )


@pytest.mark.parametrize("config", [_full_config(), _full_config(FULL_ADAMW), TrainConfig(task="adding", lr=1.0)],
                         ids=["every-field-set-sgd", "every-field-set-adamw", "defaults"])
def test_to_dict_from_dict_round_trip(config: TrainConfig) -> None:
    data = config.to_dict()
    assert TrainConfig.from_dict(data) == config
    # The dict is plain data: it survives JSON (Ray's param space, the database) unchanged.
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == config


def test_to_dict_is_plain_and_detached() -> None:
    config = _full_config()
    data = config.to_dict()
    assert data["clipping"] == {"method": "norm", "params": {"max_norm": 0.5}}
    assert data["optimizer"] == {"name": "sgd", "momentum": 0.9, "nesterov": True, "beta1": 0.9,
                                 "beta2": 0.999, "eps": 1e-8, "weight_decay": 1e-4, "warmup_steps": 5}
    assert _full_config(FULL_ADAMW).to_dict()["optimizer"] == {
        "name": "adamw", "momentum": 0.0, "nesterov": False, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6,
        "weight_decay": 0.05, "warmup_steps": 3}
    assert TrainConfig(task="adding", lr=1.0).to_dict()["optimizer"]["weight_decay"] is None
    assert data["convergence"] == {"target_loss": 0.02, "eval_every": 3}
    data["task_params"]["seq_len"] = 99
    data["clipping"]["params"]["max_norm"] = 9.0
    assert config.task_params["seq_len"] == 20
    assert config.clipping.params["max_norm"] == 0.5


@pytest.mark.parametrize(("changes", "path"), [
    ({"momentum": 2.0}, "momentum"),
    ({"name": "adam", "momentum": 0.9}, "momentum"),
    ({"warmup_steps": -3}, "warmup_steps"),
])
def test_from_dict_validates(changes: dict[str, Any], path: str) -> None:
    data = small_config().to_dict()
    data["optimizer"].update(changes)
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(data)
    assert info.value.path == path


def test_from_dict_refuses_unknown_optimizer_fields() -> None:
    data = small_config().to_dict()
    data["optimizer"]["beta3"] = 0.5
    with pytest.raises(TypeError, match="beta3"):
        TrainConfig.from_dict(data)


def test_from_dict_refuses_unknown_fields() -> None:
    data = small_config().to_dict()
    data["learning_rate"] = 0.1
    with pytest.raises(TypeError, match="learning_rate"):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(("config", "label"), [
    (ClippingConfig(), "none"),
    (ClippingConfig("norm", {"max_norm": 1.0}), "norm(max_norm=1.0)"),
    (ClippingConfig("x", {"b": 2, "a": 1}), "x(a=1,b=2)"),
])
def test_clipping_label(config: ClippingConfig, label: str) -> None:
    assert arm_label(config) == label


def test_with_device_changes_only_the_device() -> None:
    config = small_config(task_params=SMALL_TASK)
    moved = config.with_device("auto")
    assert moved.device == "auto"
    assert moved == TrainConfig.from_dict({**config.to_dict(), "device": "auto"})
