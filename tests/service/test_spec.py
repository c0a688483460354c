"""Spec validation: every rejection names the field and what is allowed."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from service.analysis.statistics import wilson_interval
from service.api.schedule_schemas import ScheduleIn
from service.errors import SpecError
from service.grid import cells
from service.scheduler.cron import Cron
from service.spec import BudgetSpec, ConvergenceSpec, DivergenceSpec, OptimizerSpec, SweepSpec, parse_spec, resolve_spec
from service.spec_rates import RateSearch
from service.spec_seeds import AdaptiveSeeds
from tests.harness import ROOT
from trainers.config import (
    ConvergenceConfig,
    DivergenceConfig,
    OptimizerConfig,
    TrainConfig,
    field_bounds,
)
from trainers.errors import ConfigError

BASE: dict[str, Any] = {
    "task": {"name": "adding", "params": {"seq_len": 20}},
    "learning_rates": [0.1, 0.5],
    "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
    "seeds": 4,
    "budget": {"max_steps": 10},
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def rejected(data: Any) -> list[dict[str, Any]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value.errors


def test_valid_spec_resolves_to_a_grid_of_cells_lr_outer_arm_inner() -> None:
    spec = parse_spec(BASE)
    grid = cells(spec)
    assert [(c.lr, c.label) for c in grid] == [
        (0.1, "none"), (0.1, "norm(max_norm=1.0)"), (0.5, "none"), (0.5, "norm(max_norm=1.0)")]
    assert spec.run_count == 16
    assert grid[3].config.task_params["seq_len"] == 20
    assert grid[3].config.task_params["hidden"] == 50  # the task's default, spelled out
    assert grid[3].config.max_steps == 10


def test_defaults_are_filled_in_so_the_stored_spec_says_exactly_what_ran() -> None:
    dumped = parse_spec(BASE).model_dump(mode="json")
    assert dumped["divergence"] == {"loss_factor": 100.0, "grad_norm_limit": 1e10}
    assert dumped["optimizer"] == {"name": "sgd", "momentum": 0.0, "nesterov": False, "beta1": 0.9,
                                   "beta2": 0.999, "eps": 1e-8, "weight_decay": None, "warmup_steps": 0}


def test_arms_are_canonical_so_equal_parameters_are_the_same_arm() -> None:
    spec = parse_spec(with_(clipping=[{"method": "norm"}]))
    assert spec.clipping[0].params == {"max_norm": 1.0, "norm_type": 2}


def test_unknown_top_level_key_lists_the_allowed_keys() -> None:
    [err] = rejected(with_(learning_rate=[0.1]))
    assert err["loc"] == ["learning_rate"]
    assert "learning_rates" in err["msg"] and "unknown key" in err["msg"]


def test_unknown_nested_key_lists_that_sections_keys() -> None:
    [err] = rejected(with_(budget={"max_steps": 10, "steps": 3}))
    assert err["loc"] == ["budget", "steps"]
    assert "max_steps" in err["msg"] and "batch_size" in err["msg"]


def test_unknown_task_lists_the_known_tasks() -> None:
    [err] = rejected(with_(task={"name": "mnist"}))
    assert err["loc"] == ["task", "name"]
    assert "'mnist'" in err["msg"] and "adding" in err["msg"]


def test_unknown_task_parameter_is_named_with_its_path() -> None:
    [err] = rejected(with_(task={"name": "adding", "params": {"seqlen": 20}}))
    assert err["loc"] == ["task", "params", "seqlen"]
    assert "seq_len" in err["msg"]


def test_out_of_range_task_parameter() -> None:
    [err] = rejected(with_(task={"name": "adding", "params": {"seq_len": 3}}))
    assert err["loc"] == ["task", "params", "seq_len"]
    assert "3" in err["msg"]


def test_unknown_clipping_method_lists_the_known_methods() -> None:
    [err] = rejected(with_(clipping=[{"method": "none"}, {"method": "clipnorm"}]))
    assert err["loc"] == ["clipping", 1, "method"]
    assert "norm" in err["msg"] and "none" in err["msg"]


def test_bad_clipping_parameter_names_the_value() -> None:
    [err] = rejected(with_(clipping=[{"method": "norm", "max_norm": -1.0}]))
    assert err["loc"] == ["clipping", 0, "max_norm"]
    assert "-1.0" in err["msg"]


def test_duplicate_arm_is_refused() -> None:
    [err] = rejected(with_(clipping=[{"method": "norm", "max_norm": 1.0}, {"method": "norm", "max_norm": 1}]))
    assert err["loc"] == ["clipping", 1]


@pytest.mark.parametrize("lrs", [[0.0], [-0.1], [0.1, -1.0]])
def test_non_positive_learning_rate(lrs: list[float]) -> None:
    [err] = rejected(with_(learning_rates=lrs))
    assert err["loc"] == ["learning_rates"]
    assert "> 0" in err["msg"]


@pytest.mark.parametrize("lrs", [["0.1"], [None], [float("nan")], "0.1", []])
def test_learning_rate_that_is_not_a_number(lrs: Any) -> None:
    errors = rejected(with_(learning_rates=lrs))
    assert errors and all(e["loc"][0] == "learning_rates" for e in errors)


@pytest.mark.parametrize("seeds", [0, -3, [], [1, 1], [-1]])
def test_bad_seeds(seeds: Any) -> None:
    errors = rejected(with_(seeds=seeds))
    assert errors and all(e["loc"][0] == "seeds" for e in errors)


def test_explicit_seed_list_is_kept_in_order() -> None:
    assert parse_spec(with_(seeds=[7, 3, 11])).seed_list == [7, 3, 11]


@pytest.mark.parametrize("budget", [{"max_steps": 0}, {"max_steps": -5}, {"batch_size": 0}])
def test_bad_budget(budget: dict[str, int]) -> None:
    [err] = rejected(with_(budget=budget))
    assert err["loc"][0] == "budget"
    assert "greater than or equal to 1" in err["msg"]


def test_a_search_may_leave_its_seeds_out_and_gets_the_adaptive_defaults() -> None:
    """Stating the range is enough: each probe is decided with adaptive seeds anyway, and the stored
    spec says which."""
    spec = parse_spec(with_(learning_rates={"search": {"low": 0.01, "high": 1.0}}, seeds=None))
    assert spec.seeds == parse_spec(with_(learning_rates={"search": {"low": 0.01, "high": 1.0}},
                                          seeds={"adaptive": {}})).seeds
    assert spec.model_dump(mode="json")["seeds"] == {
        "adaptive": {"min": 16, "max": 512, "batch": 16, "tolerance": 0.05, "alpha": 0.05, "first": 0}}
    left_out = {k: v for k, v in with_(learning_rates={"search": {"low": 0.01, "high": 1.0}}).items() if k != "seeds"}
    assert parse_spec(left_out).seeds == spec.seeds


def test_a_list_of_learning_rates_needs_its_seeds_and_says_how_to_give_them() -> None:
    [err] = rejected({k: v for k, v in BASE.items() if k != "seeds"})
    assert err["loc"] == ["seeds"]
    assert "how many (e.g. 80), an explicit list, or {adaptive:" in err["msg"]
    assert "only a search over learning_rates may leave it out" in err["msg"]


def test_missing_required_fields_are_each_named() -> None:
    locs = {tuple(e["loc"]) for e in rejected({})}
    assert {("task",), ("learning_rates",), ("seeds",)} <= locs


def test_a_body_that_is_not_an_object() -> None:
    [err] = rejected([1, 2, 3])
    assert err["type"] == "model_type"


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml"))
                         + sorted((ROOT / "examples").glob("*.json")), ids=lambda p: p.name)
def test_every_example_spec_resolves(path: Path) -> None:
    loaded = yaml.safe_load(path.read_text())
    if "sweep" in loaded:  # a schedule file: its cron, zone and policies too
        schedule = ScheduleIn.model_validate(loaded)
        Cron.parse(schedule.cron, schedule.timezone)
        loaded = loaded["sweep"]
    spec = resolve_spec(parse_spec(loaded))
    queued = len(cells(spec)) * len(spec.seed_list)  # what submitting it queues
    if isinstance(spec.learning_rates, RateSearch) or isinstance(spec.seeds, AdaptiveSeeds):
        assert queued < spec.run_count  # the first probes' first seeds; the rest as the answer needs
    else:
        assert queued == spec.run_count


def test_the_frontier_example_has_the_seeds_a_5_percent_bound_needs() -> None:
    """The README's three-question example: 0 of n seeds has a Wilson upper bound under 5% only from
    n = 73 on, so fewer seeds could never show a stable learning rate at the default tolerance."""
    spec = parse_spec(yaml.safe_load((ROOT / "examples" / "deep-mlp-frontier.yaml").read_text()))
    assert len(spec.seed_list) >= 73 and wilson_interval(0, len(spec.seed_list))[1] < 0.05


# Each spec section and the trainers config it becomes, with the fields that carry over.
MIRRORED = [
    (OptimizerSpec, OptimizerConfig, [f.name for f in fields(OptimizerConfig)]),
    (DivergenceSpec, DivergenceConfig, [f.name for f in fields(DivergenceConfig)]),
    (ConvergenceSpec, ConvergenceConfig, [f.name for f in fields(ConvergenceConfig)]),
    (BudgetSpec, TrainConfig, ["max_steps", "batch_size"]),
    (SweepSpec, TrainConfig, ["record_every"]),
]


def _probes(bounds: dict[str, float]) -> list[float]:
    """Values on and just beside each bound."""
    return [v for limit in bounds.values() for v in (limit, limit - 1e-9, limit + 1e-9, limit - 1, limit + 1)]


def _spec_accepts(spec_type: Any, name: str, value: Any) -> bool:
    base = BASE if spec_type is SweepSpec else {}
    try:
        spec_type.model_validate({**base, name: value})
        return True
    except ValidationError:
        return False


def _config_accepts(config_type: Any, name: str, value: Any) -> bool:
    base = {"task": "adding", "lr": 0.1} if config_type is TrainConfig else {}
    try:
        config_type(**{**base, name: value})
        return True
    except ConfigError:
        return False


@pytest.mark.parametrize(("spec_type", "config_type", "names"), MIRRORED, ids=lambda x: getattr(x, "__name__", ""))
def test_the_spec_and_the_trainers_agree_on_every_default_and_range(spec_type: Any, config_type: Any,
                                                                  names: list[str]) -> None:
    """The trainers' configs own these defaults and ranges; the API schema must not drift from them."""
    for name in names:
        [declared] = [f for f in fields(config_type) if f.name == name]
        assert spec_type.model_fields[name].default == declared.default, name
        for value in _probes(field_bounds(config_type, name)):
            value = int(value) if isinstance(declared.default, int) and value == int(value) else value
            if isinstance(declared.default, int) and not isinstance(value, int):
                continue
            assert _spec_accepts(spec_type, name, value) == _config_accepts(config_type, name, value), (name, value)


def test_a_default_spec_trains_with_the_trainers_defaults() -> None:
    config = cells(parse_spec(BASE | {"budget": {}}))[0].config
    defaults = TrainConfig(task="adding", lr=0.1)
    assert (config.optimizer, config.divergence, config.convergence) == (
        defaults.optimizer, defaults.divergence, defaults.convergence)
    assert (config.max_steps, config.batch_size, config.record_every) == (
        defaults.max_steps, defaults.batch_size, defaults.record_every)


def test_a_number_that_arrives_as_text_names_the_yaml_pitfall() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec({"task": {"name": "adding"}, "learning_rates": [0.1], "seeds": 2,
                    "divergence": {"loss_factor": "1.0e10"}})
    [error] = caught.value.errors
    assert error["loc"] == ["divergence", "loss_factor"]
    assert "got the text '1.0e10'" in error["msg"] and "write 1.0e+10" in error["msg"]
