"""The one module of trainers/ that imports Ray: a Tune trainable around `run_chunk`.

Tune hands the trainable a plain dict; it becomes a typed frozen TrainConfig, the chunk of seeds is
trained by the Ray-free engine (vectorized where the task allows), and every seed is reported the
moment it finishes, so the driver can store it while the rest of the chunk trains. A report is one
entry, `{"report": {...}}`, beside the keys Tune adds of its own; the service checks its fields
where it arrives (service/lifecycle/report.py). Between them, at most every PROGRESS_SECONDS, a
`{"progress": {"cell_index", "seeds", "steps"}}` entry says how far the seeds still training are,
so a sweep whose runs all end at the end of their budget still shows progress.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict
from typing import Any

import ray
import torch
from ray import tune

from trainers.allocator import keep_freed_memory
from trainers.config import TrainConfig
from trainers.loop import RunResult, resolve_device
from trainers.vectorized import run_chunk

# A progress report is a Tune result: the trial waits for the driver to take it, and the driver
# processes it as it does any result. Every 5 s moves a progress bar often enough; each report
# more costs the driver another result to process.
PROGRESS_SECONDS = 5.0


class _Progress:
    """`on_step` for run_chunk: reports the chunk's steps at most every PROGRESS_SECONDS."""

    def __init__(self, cell_index: int, seeds: list[int]) -> None:
        self.cell_index, self.seeds = cell_index, seeds
        self.last = time.monotonic()

    def __call__(self, steps: int) -> None:
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.last = time.monotonic()
            tune.report({"progress": {"cell_index": self.cell_index, "seeds": self.seeds, "steps": steps}})


def result_payload(result: RunResult) -> dict[str, Any]:
    """A RunResult as a plain dict; points become compact [step, loss, grad_norm, clipped] rows."""
    out = asdict(result)
    out["outcome"] = result.outcome.value
    out["trigger"] = result.trigger.value if result.trigger else None
    out["points"] = [[p.step, p.loss, p.grad_norm, p.clipped] for p in result.points]
    return out


def describe_device(device: torch.device) -> str:
    """"cpu", or "cuda:0 (NVIDIA H200)": which accelerator a run trained on."""
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"[:50]


def train_chunk(tune_config: dict[str, Any]) -> None:
    """Tune trainable. tune_config["chunk"] = {"train": TrainConfig dict, "cell_index": int,
    "seeds": [int], "threads": float, "keep_freed_memory": bool}. Reports one result per seed, as
    each finishes."""
    config = tune_config["chunk"]
    train_config = TrainConfig.from_dict(config["train"])
    torch.set_num_threads(max(1, int(math.floor(config["threads"]))))
    resolved = resolve_device(train_config.device)
    if config["keep_freed_memory"] and resolved.type == "cpu":
        keep_freed_memory()  # big per-step tensors: reuse memory rather than page-fault (allocator.py)
    device = describe_device(resolved)
    # Several Ray nodes can share a host: the node id tells them apart.
    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    node = platform.node() + (f":{node_id[:12]}" if node_id else "")
    progress = _Progress(config["cell_index"], config["seeds"])
    for seed, result in run_chunk(train_config, config["seeds"], on_step=progress):
        tune.report({"report": {
            "cell_index": config["cell_index"],
            "seed": seed,
            "run": result_payload(result),
            "device": device,
            "node": node,
        }})
