"""The task registry: the built-in tasks, plus those installed plugins add (trainers.plugins)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from trainers.errors import ConfigError
from trainers.tasks.adding import AddingTask
from trainers.tasks.base import Task
from trainers.tasks.deep_mlp import DeepMLPTask
from trainers.tasks.quadratic import QuadraticTask
from trainers.tasks.temporal_order import TemporalOrderTask
from trainers.tasks.tiny_transformer import TinyTransformerTask

# The built-in tasks. `registered_tasks()` adds the plugins'.
TASKS: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (AddingTask, TemporalOrderTask, DeepMLPTask, TinyTransformerTask, QuadraticTask)
}


@lru_cache(maxsize=1)
def _discovered() -> tuple[dict[str, type[Task]], dict[str, str]]:
    from trainers.plugins import discover_tasks

    return discover_tasks(TASKS)


def registered_tasks() -> dict[str, type[Task]]:
    """Every task a spec may name: built-ins first, then plugins."""
    return {**TASKS, **_discovered()[0]}


def plugin_errors() -> dict[str, str]:
    """Plugins that were found but could not be used, with why."""
    return dict(_discovered()[1])


def get_task_class(name: str) -> type[Task]:
    tasks = registered_tasks()
    if name in tasks:
        return tasks[name]
    hint = f" (a plugin of that name is broken: {plugin_errors()[name]})" if name in plugin_errors() else ""
    raise ConfigError("name", f"unknown task {name!r}; known: {sorted(tasks)}{hint}")


def build_task(name: str, params: Mapping[str, Any] | None = None) -> Task:
    return get_task_class(name)(params)


__all__ = ["TASKS", "Task", "build_task", "get_task_class", "plugin_errors", "registered_tasks"]
