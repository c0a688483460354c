"""Parameter and configuration validation (trainers/params.py, trainers/config.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from trainers import (
    TASKS,
    ClippingConfig,
    ConfigError,
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
    build_task,
    run_seed,
)
from trainers.clipping import NormParams
from trainers.params import build_params, describe
from trainers.tasks.adding import AddingParams

from tests.trainers.helpers import SMALL_TASK, small_config


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
    ("init", "xavier", "must be one of ['basic_tanh']"),  # not one of the Literal's values
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
    assert "['seq_len', 'hidden', 'init', 'init_std', 'eval_size']" in info.value.message


@pytest.mark.parametrize("values", [[("seq_len", 10)], "seq_len=10", 10])
def test_params_must_be_a_mapping(values: Any) -> None:
    with pytest.raises(ConfigError) as info:
        build_params(AddingParams, values)
    assert info.value.path == "params"
    assert type(values).__name__ in info.value.message


def test_valid_params_are_coerced_and_defaults_filled() -> None:
    params = build_task("adding", {"seq_len": 12, "init_std": 1}).params
    assert params == AddingParams(seq_len=12, init_std=1.0)
    assert isinstance(params.init_std, float)
    assert build_params(NormParams, {}) == NormParams(max_norm=1.0)


def test_describe_lists_name_type_default() -> None:
    assert describe(AddingParams) == [
        {"name": "seq_len", "type": "int", "default": 50},
        {"name": "hidden", "type": "int", "default": 50},
        {"name": "init", "type": "Literal", "default": "basic_tanh"},
        {"name": "init_std", "type": "float", "default": 0.1},
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
    (lambda: OptimizerConfig(name="adam"), "name"),
    (lambda: OptimizerConfig(momentum=1.0), "momentum"),
    (lambda: OptimizerConfig(momentum=-0.1), "momentum"),
    (lambda: OptimizerConfig(momentum=math.nan), "momentum"),
    (lambda: OptimizerConfig(nesterov=True), "nesterov"),
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


def test_config_error_is_a_value_error() -> None:
    """Callers that catch ValueError (argument parsing, pydantic validators) catch it too."""
    assert issubclass(ConfigError, ValueError)


def _full_config() -> TrainConfig:
    """A TrainConfig with every field away from its default."""
    return TrainConfig(
        task="adding",
        lr=0.05,
        task_params={"seq_len": 20, "hidden": 4},
        optimizer=OptimizerConfig(momentum=0.9, nesterov=True),
        clipping=ClippingConfig("norm", {"max_norm": 0.5}),
        max_steps=7,
        batch_size=3,
        divergence=DivergenceConfig(loss_factor=10.0, grad_norm_limit=1.0e4),
        convergence=ConvergenceConfig(target_loss=0.02, eval_every=3),
        record_every=2,
        device="auto",
    )


@pytest.mark.parametrize("config", [_full_config(), TrainConfig(task="adding", lr=1.0)],
                         ids=["every-field-set", "defaults"])
def test_to_dict_from_dict_round_trip(config: TrainConfig) -> None:
    data = config.to_dict()
    assert TrainConfig.from_dict(data) == config
    # The dict is plain data: it survives JSON (Ray's param space, the database) unchanged.
    assert TrainConfig.from_dict(json.loads(json.dumps(data))) == config


def test_to_dict_is_plain_and_detached() -> None:
    config = _full_config()
    data = config.to_dict()
    assert data["clipping"] == {"method": "norm", "params": {"max_norm": 0.5}}
    assert data["optimizer"] == {"name": "sgd", "momentum": 0.9, "nesterov": True}
    assert data["convergence"] == {"target_loss": 0.02, "eval_every": 3}
    data["task_params"]["seq_len"] = 99
    data["clipping"]["params"]["max_norm"] = 9.0
    assert config.task_params["seq_len"] == 20
    assert config.clipping.params["max_norm"] == 0.5


def test_from_dict_validates() -> None:
    data = small_config().to_dict()
    data["optimizer"]["momentum"] = 2.0
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(data)
    assert info.value.path == "momentum"


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
    assert config.label == label


def test_with_device_changes_only_the_device() -> None:
    config = small_config(task_params=SMALL_TASK)
    moved = config.with_device("auto")
    assert moved.device == "auto"
    assert moved == TrainConfig.from_dict({**config.to_dict(), "device": "auto"})
