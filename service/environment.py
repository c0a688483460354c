"""What a sweep ran against, recorded when a worker claims it: the versions where the worker drives
its trials (clipsweep, Python, torch and its CUDA, Ray) and the package of the task's plugin. A
nightly sweep that changed outcome can then be read against what changed around it."""

from __future__ import annotations

import functools
import platform
from importlib import metadata

from service import __version__
from trainers.plugins import plugin_distribution


@functools.cache
def _installed() -> dict[str, str | None]:
    # Read once per process: a package upgraded since takes effect when the worker restarts, and
    # until then it trains with what it imported. Ray's version from its metadata: only the two
    # Ray modules import Ray.
    import torch

    return {"clipsweep": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "ray": metadata.version("ray")}


def environment(task_name: str) -> dict[str, str | None]:
    """The versions this process trains `task_name` with; `task_plugin` is None for a built-in task."""
    return {**_installed(), "task_plugin": plugin_distribution(task_name)}
