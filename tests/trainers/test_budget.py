"""What a trial is estimated to cost (trainers/budget.py) before it runs."""

from __future__ import annotations

import pytest

from tests.trainers.helpers import SMALL_TASKS
from trainers import TASKS, ClippingConfig, TrainConfig, build_task
from trainers.budget import trial_memory_bytes


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_built_in_task_counts_its_parameters_exactly(name: str) -> None:
    task = build_task(name, SMALL_TASKS[name])
    cost = task.cost(batch_size=8)
    assert cost is not None
    assert cost.parameters == sum(p.numel() for p in task.build_model(0).parameters())


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_batch_costs_more_the_larger_it_is(name: str) -> None:
    task = build_task(name, SMALL_TASKS[name])
    small, large = task.cost(batch_size=8), task.cost(batch_size=64)
    assert small is not None and large is not None and small.evaluation == large.evaluation
    assert large.training >= small.training > 0


def config(**overrides: object) -> TrainConfig:
    return TrainConfig(**{"task": "adding", "lr": 0.1, "task_params": SMALL_TASKS["adding"], **overrides})


def test_a_trial_costs_its_seeds_and_autoclips_history() -> None:
    one, many = trial_memory_bytes(config(), 1), trial_memory_bytes(config(), 64)
    assert one is not None and many == 64 * one
    history = trial_memory_bytes(config(clipping=ClippingConfig("autoclip"), max_steps=1_000_000), 64)
    assert history is not None and history - many == 4 * 64 * 1_000_000 * 4
    assert trial_memory_bytes(config(clipping=ClippingConfig("zclip"), max_steps=1_000_000), 64) == many


def test_a_task_without_an_estimate_is_not_budgeted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TASKS["adding"], "cost", lambda self, batch_size: None)
    assert trial_memory_bytes(config(), 64) is None
