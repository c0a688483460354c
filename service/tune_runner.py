"""The Ray Tune driver: the only service module that imports Ray.

One trial per (cell, chunk of seeds). A Tune callback on the driver hands every reported seed to a
ResultSink as it arrives, so outcomes reach the database while the sweep runs; a Stopper ends the
experiment when the worker is asked to stop.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Protocol, Sequence

# Read by Tune in this (driver) process. Results carry whole point series: Tune's own CSV/JSON/
# TensorBoard loggers would write them all a second time, and the database is the record.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# The worker owns SIGINT/SIGTERM and stops Tune through the Stopper below.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
# Progress is the database's and the dashboard's job; Tune's console tables would repeat it.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402

from service.planning import TrialPlan  # noqa: E402
from service.results import ReportedRun  # noqa: E402
from trainers.ray_adapter import train_chunk  # noqa: E402


class ResultSink(Protocol):
    def add(self, result: ReportedRun) -> None: ...
    def fail_chunk(self, cell_index: int, seeds: Sequence[int], error: str) -> None: ...
    def tick(self) -> None: ...
    def flush(self) -> None: ...


# With Tune's loggers off, its result summary cannot find per-trial files and warns for each
# trial; the results are in the database.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def ensure_ray(address: str | None) -> None:
    """Connect to the cluster at `address`, or start a local Ray, once per process."""
    if ray.is_initialized():
        return
    # ray.init installs a native SIGTERM handler that ends the process at once; keep the worker's
    # own handlers, which stop Tune and give the sweep back to the queue first.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    ray.init(address=address, include_dashboard=False, logging_level="WARNING",
             configure_logging=True, log_to_driver=True)
    if threading.current_thread() is threading.main_thread():
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def error_summary(trial: Any) -> str:
    """The exception line of a failed trial's traceback. Tune writes the traceback to a file in
    the driver's staging directory before it calls the callbacks (the storage copy comes later)."""
    path = trial.error_file
    text = Path(path).read_text(errors="replace") if path and Path(path).exists() else ""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:2000] if lines else "the trial failed and Tune recorded no error message"


class _LiveOnly:
    """Tuner pickles its run config to support `Tuner.restore`. Ours holds live objects (a database
    sink, a threading.Event) and is never restored (the database is the source of truth), so the
    pickled copy carries nothing."""

    def __getstate__(self) -> dict[str, Any]:
        return {}


class _SinkCallback(_LiveOnly, tune.Callback):
    def __init__(self, sink: ResultSink) -> None:
        self.sink = sink

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.sink.add(ReportedRun(cell_index=result["cell_index"], seed=result["seed"],
                                  run=result["run"], device=result.get("device"), node=result.get("node")))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        chunk = trial.config["chunk"]
        self.sink.fail_chunk(chunk["cell_index"], chunk["seeds"], error_summary(trial))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.sink.tick()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.sink.flush()


class _StopWhenSet(_LiveOnly, tune.Stopper):
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.event.is_set()


def run_trials(trials: Sequence[TrialPlan], *, sink: ResultSink, stop: threading.Event,
               cpus_per_trial: float, gpus_per_trial: float, max_concurrent_trials: int | None,
               storage_path: Path, name: str) -> None:
    """Run every trial to its end (or until `stop` is set); results flow into `sink`."""
    trainable = tune.with_resources(train_chunk, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    chunks = [{"cell_index": t.cell_index, "train": t.train_config, "seeds": t.seeds,
               "threads": max(1, int(cpus_per_trial))} for t in trials]
    tuner = tune.Tuner(
        trainable,
        param_space={"chunk": tune.grid_search(chunks)},
        tune_config=tune.TuneConfig(
            # A fresh actor per trial costs over a second; the chunks of a sweep share one kind.
            reuse_actors=True,
            max_concurrent_trials=max_concurrent_trials,
            trial_name_creator=lambda trial: f"cell{trial.config['chunk']['cell_index']}-{trial.trial_id}",
            trial_dirname_creator=lambda trial: trial.trial_id,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage_path),
            callbacks=[_SinkCallback(sink)],
            stop=_StopWhenSet(stop),
            # Code errors are not retried: a trial that raises ends its runs `failed`.
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=0,
        ),
    )
    tuner.fit()
