"""Task plugins: any installed package can add tasks through the entry-point group
`clipsweep.tasks` (name = the task's name, value = "module:TaskSubclass").

Discovery is lazy (on the first registry lookup, not at import), so a plugin module may itself
import `trainers`. A plugin that fails to load, or is not a Task, or reuses a built-in's name,
does not take the registry down: it is left out and its error is kept for listings and messages.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainers.tasks.base import Task

ENTRY_POINT_GROUP = "clipsweep.tasks"


def discover_tasks(builtin: dict[str, type[Task]]) -> tuple[dict[str, type[Task]], dict[str, str]]:
    """The tasks installed plugins provide, and the errors of those that could not be used."""
    from trainers.tasks.base import Task

    found: dict[str, type[Task]] = {}
    errors: dict[str, str] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {entry.name!r} ({entry.value})"
        if entry.name in builtin:
            errors[entry.name] = f"{where} reuses the name of a built-in task"
            continue
        try:
            cls = entry.load()
        except Exception as exc:  # a broken plugin must not break clipsweep
            errors[entry.name] = f"{where} failed to load: {type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            errors[entry.name] = f"{where} is not a subclass of trainers.Task"
        elif getattr(cls, "name", None) != entry.name:
            errors[entry.name] = f"{where} names a task called {getattr(cls, 'name', None)!r}"
        else:
            found[entry.name] = cls
    return found, errors


def plugin_distribution(task_name: str) -> str | None:
    """'dist-name==version' of the installed package whose entry point provides `task_name`, or
    None for a built-in task (or one no installed package names)."""
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=task_name):
        if entry.dist is not None:
            return f"{entry.dist.name}=={entry.dist.version}"
    return None
