"""The task registry: built-in tasks by name."""

from __future__ import annotations

from typing import Any, Mapping

from trainers.config import ConfigError
from trainers.tasks.adding import AddingTask
from trainers.tasks.base import Task

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (AddingTask,)}


def get_task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError("name", f"unknown task {name!r}; known: {sorted(TASKS)}") from None


def build_task(name: str, params: Mapping[str, Any] | None = None) -> Task:
    return get_task_class(name)(params)


__all__ = ["TASKS", "Task", "build_task", "get_task_class"]
