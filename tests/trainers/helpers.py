"""Small, fast configurations shared by the trainers tests."""

from __future__ import annotations

from typing import Any

from trainers import TrainConfig, train

# The adding task at its smallest legal size: every run below takes milliseconds.
SMALL_TASK: dict[str, Any] = {"seq_len": 10, "hidden": 8, "eval_size": 32}

# Small instances of every built-in task.
SMALL_TASKS: dict[str, dict[str, Any]] = {
    "adding": {"seq_len": 10, "hidden": 8, "eval_size": 16},
    "temporal_order": {"seq_len": 20, "hidden": 8, "eval_size": 16},
    "deep_mlp": {"depth": 4, "width": 16, "in_dim": 8, "eval_size": 16},
    "tiny_transformer": {"seq_len": 6, "vocab": 5, "d_model": 16, "n_layers": 2, "n_heads": 4, "eval_size": 16},
    "quadratic": {},
}


def small_config(**overrides: Any) -> TrainConfig:
    """A TrainConfig on the small adding task; keyword arguments replace its fields."""
    fields: dict[str, Any] = {
        "task": "adding",
        "lr": 0.01,
        "task_params": SMALL_TASK,
        "max_steps": 5,
        "batch_size": 8,
        "record_every": 1,
    }
    fields.update(overrides)
    return TrainConfig(**fields)


def step_losses(config: TrainConfig, seed: int) -> list[float]:
    """The training loss of every step of one run."""
    return [rec.loss for rec in train(config, seed)]

