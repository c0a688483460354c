"""The Ray Tune runner: the only service module that imports Ray.

One trial per (cell, chunk of seeds), one Tune run per sweep: a Searcher hands Tune the trials the
worker plans from what is stored and, as each is done, asks for more (no new Tune run or actors,
each of which would cost seconds). A Tune callback hands every reported seed to the TrialSink as
it arrives, checked against RunReport, so outcomes reach the database while the sweep runs; a
Stopper ends the experiment when the worker is asked to stop. Ray's own errors are translated
here: lost infrastructure becomes ClusterUnavailable (or a lost chunk, for one trial).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Sequence

# Read by Tune in this (driver) process. Results carry whole point series: Tune's own CSV/JSON/
# TensorBoard loggers would write them all a second time, and the database is the record.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# The worker owns SIGINT/SIGTERM and stops Tune through the Stopper below.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
# Progress is the database's and the dashboard's job; Tune's console tables would repeat it.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Tune lets a custom Searcher have one trial waiting for placement at a time: trials would start
# one by one and a cluster's other nodes would idle. Allow what Tune allows a grid search at least.
os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "200")

import ray  # noqa: E402
import ray.exceptions  # noqa: E402
from ray import (
    cloudpickle,  # noqa: E402
    tune,  # noqa: E402
)
from ray.tune.search import Searcher  # noqa: E402

from service.errors import ClusterUnavailable, ReportError  # noqa: E402
from service.lifecycle.report import parse_progress, parse_report  # noqa: E402
from service.lifecycle.runs import Chunk  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.spec import ResourcesSpec  # noqa: E402
from service.worker.planning import TrialPlan  # noqa: E402
from service.worker.runner import TrialSink  # noqa: E402
from trainers.allocator import allocator_environment  # noqa: E402
from trainers.ray_adapter import train_chunk  # noqa: E402

# Exceptions that mean the infrastructure went away under a trial (a killed actor or worker
# process, a lost node, the memory monitor), not that the training code raised: such a trial's
# unfinished runs are trained again, up to a bound; a code error ends them `failed` at once.
# AuthenticationError is here because a head that restarted at the same address answers a
# connected driver "WrongClusterID" through it: the cluster changed under the sweep.
INFRASTRUCTURE_ERRORS = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                         ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError,
                         ray.exceptions.ObjectLostError, ray.exceptions.OutOfMemoryError,
                         ray.exceptions.OutOfDiskError, ray.exceptions.ObjectStoreFullError,
                         ray.exceptions.ActorUnschedulableError, ray.exceptions.RuntimeEnvSetupError,
                         ray.exceptions.RaySystemError, ray.exceptions.AuthenticationError)

# With Tune's loggers off, its result summary cannot find per-trial files and warns for each
# trial; the results are in the database.
logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def is_infrastructure_error(exc: BaseException | None) -> bool:
    if isinstance(exc, ray.exceptions.RayTaskError):
        exc = exc.cause  # a task error wraps the cause: an actor death, or the user's code raising
    return isinstance(exc, INFRASTRUCTURE_ERRORS)


def trial_exception(trial: Any) -> BaseException | None:
    """The exception a failed trial ended with. Tune pickles Ray task and actor errors into the
    trial's local directory before it calls the callbacks."""
    path = trial.pickled_error_file
    if not path or not Path(path).exists():
        return None
    try:
        return cloudpickle.loads(Path(path).read_bytes())
    except Exception:  # an exception that cannot be unpickled here: treat it as the code's
        return None


def error_text(trial: Any) -> str:
    """A failed trial's traceback. Tune writes it to a file in the driver's staging directory
    before it calls the callbacks (the storage copy comes later)."""
    path = trial.error_file
    return Path(path).read_text(errors="replace") if path and Path(path).exists() else ""


def error_summary(text: str) -> str:
    """The exception line of a traceback."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:2000] if lines else "the trial failed and Tune recorded no error message"


class _LiveOnly:
    """Tuner pickles its run config to support `Tuner.restore`. Ours holds live objects (a result
    sink, a stop condition) and is never restored (the database is the source of truth), so the
    pickled copy carries nothing."""

    def __getstate__(self) -> dict[str, Any]:
        return {}


class _SinkCallback(_LiveOnly, tune.Callback):
    def __init__(self, sink: TrialSink) -> None:
        self.sink = sink

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        try:
            if "progress" in result:  # how far its runs are, between results
                progress = parse_progress(result["progress"])
                self.sink.progress(progress.cell_index, progress.seeds, progress.steps)
                return
            self.sink.add(parse_report(result["report"]))
        except (KeyError, ReportError) as exc:  # a trainer of another version: its run fails, saying why
            chunk = trial.config["chunk"]
            seed = result.get("report", {}).get("seed")
            self.sink.fail_chunk(chunk["cell_index"], [seed] if seed in chunk["seeds"] else chunk["seeds"],
                                 f"{type(exc).__name__}: {exc}")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        chunk = trial.config["chunk"]
        self.sink.start_chunk(chunk["cell_index"], chunk["seeds"])

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        chunk = trial.config["chunk"]
        message = error_summary(error_text(trial))
        if is_infrastructure_error(trial_exception(trial)):
            self.sink.lose_chunk(chunk["cell_index"], chunk["seeds"], message)
        else:
            self.sink.fail_chunk(chunk["cell_index"], chunk["seeds"], message)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self.sink.tick()


class _StopWhen(_LiveOnly, tune.Stopper):
    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.should_stop()


class TuneRunner:
    """Runs trials on the Ray cluster at `settings.ray_address`, or on a local Ray started in
    this process (`address="local"`: it never joins a cluster some `ray start` left here)."""

    def __init__(self, settings: Settings) -> None:
        self.address = settings.ray_address
        self.storage = settings.resolved_tune_storage
        self.keep_freed_memory = settings.keep_freed_memory

    def connect(self) -> None:
        """Connect once per process; ClusterUnavailable if the cluster cannot be reached."""
        if ray.is_initialized():
            return
        # ray.init installs a native SIGTERM handler that ends the process at once; keep the
        # worker's own handlers, which stop Tune and give the sweep back to the queue first.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        # Trials run in threads of Ray's worker processes: glibc must be told at their start to
        # reuse freed memory there (trainers/allocator.py).
        env = allocator_environment() if self.keep_freed_memory else {}
        with _translated_ray_errors():
            ray.init(address=self.address or "local", include_dashboard=False, runtime_env={"env_vars": env},
                     logging_level="WARNING", configure_logging=True, log_to_driver=True)
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def local_address(self) -> str:
        """Connect (starting a local Ray if none is configured) and return the address other
        driver processes join it at."""
        self.connect()
        return ray.get_runtime_context().gcs_address

    def node_resources(self) -> list[dict[str, float]]:
        """CPU and GPU of every live node of the connected cluster (busy or not)."""
        self.connect()
        with _translated_ray_errors():
            nodes = ray.nodes()
        return [{"CPU": float(node["Resources"].get("CPU", 0.0)), "GPU": float(node["Resources"].get("GPU", 0.0))}
                for node in nodes if node.get("Alive")]

    def run_trials(self, next_trials: Callable[[Collection[Chunk]], Sequence[TrialPlan]], *, sink: TrialSink,
                   should_stop: Callable[[], bool], resources: ResourcesSpec, name: str) -> None:
        """TrialRunner.run_trials on Ray Tune: one Tune run, the Searcher below asking for more."""
        self.connect()
        first = next_trials(())
        if not first:
            return
        trainable = tune.with_resources(train_chunk, {"cpu": resources.cpus_per_trial,
                                                      "gpu": resources.gpus_per_trial})

        def chunks(trials: Sequence[TrialPlan]) -> list[dict[str, Any]]:
            return [{"cell_index": t.cell_index, "train": t.train_config, "seeds": t.seeds,
                     "threads": resources.cpus_per_trial, "keep_freed_memory": self.keep_freed_memory}
                    for t in trials]

        searcher = _PlanningSearcher(chunks(first), lambda in_flight: chunks(next_trials(in_flight)))
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=-1,  # as many trials as the worker plans
                # A fresh actor per trial costs over a second; the chunks of a sweep share one kind.
                reuse_actors=True,
                max_concurrent_trials=resources.max_concurrent_trials,
                trial_name_creator=lambda trial: f"cell{trial.config['chunk']['cell_index']}-{trial.trial_id}",
                trial_dirname_creator=lambda trial: trial.trial_id,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=self.storage,
                callbacks=[_SinkCallback(sink)],
                stop=_StopWhen(should_stop),
                # Tune never retries: a code error ends its runs `failed`, and lost infrastructure is
                # retried by the worker for the runs still without an outcome (the database knows which).
                failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                verbose=0,
            ),
        )
        with _translated_ray_errors():
            tuner.fit()
            if searcher.error is not None:  # raised while planning, inside Tune's loop
                raise searcher.error


class _PlanningSearcher(_LiveOnly, Searcher):
    """Hands Tune the trials the worker planned, one per `suggest`, and asks `next_trials` for
    more, with the chunks still in flight, as soon as a trial's last seed has reported (or it
    ended without): before Tune ends the trial, because Tune keeps an ended trial's actor only for
    a trial already waiting (and one idle actor besides); planned after, trials would run one by
    one on a single actor. An exception while planning ends the run; it is raised again after."""

    def __init__(self, first: list[dict[str, Any]],
                 next_trials: Callable[[Collection[Chunk]], list[dict[str, Any]]]) -> None:
        super().__init__()
        self.queue = list(first)
        self.next_trials = next_trials
        self.in_flight: dict[str, tuple[Chunk, int]] = {}  # trial id -> (its chunk, its seeds yet to report)
        self.ended = False  # a trial is done since the last plan
        self.error: BaseException | None = None

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if not self.queue and self.ended:
            self.ended = False
            try:
                self.queue = self.next_trials([chunk for chunk, _ in self.in_flight.values()])
            except BaseException as exc:
                self.error = exc
                return Searcher.FINISHED
        if not self.queue:
            return None if self.in_flight else Searcher.FINISHED
        chunk = self.queue.pop(0)
        self.in_flight[trial_id] = ((chunk["cell_index"], tuple(chunk["seeds"])), len(chunk["seeds"]))
        return {"chunk": chunk}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Called before the callbacks get the result; the plan comes at Tune's next step, after."""
        if "report/seed" in result and trial_id in self.in_flight:  # a seed's outcome (flattened), not progress
            chunk, left = self.in_flight[trial_id]
            self.in_flight[trial_id] = (chunk, left - 1)
            if left <= 1:
                self.on_trial_complete(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.ended |= self.in_flight.pop(trial_id, None) is not None

    def save(self, checkpoint_path: str) -> None:
        """Nothing to keep: the database is the record of where a sweep stands."""

    def restore(self, checkpoint_path: str) -> None:
        """Never restored (see `save`)."""


@contextmanager
def _translated_ray_errors() -> Iterator[None]:
    """Ray going away under a call is not the sweep's fault: it becomes ClusterUnavailable, and
    this process lets go of its connection, which may point at a cluster that is gone or was
    replaced, so that the next `connect` joins whatever answers at the address then (a worker
    runs one Tune run per process, so nothing else here is using it)."""
    try:
        yield
    except ConnectionError as exc:
        ray.shutdown()
        raise ClusterUnavailable(str(exc)) from exc
    except Exception as exc:
        if is_infrastructure_error(exc):
            ray.shutdown()
            raise ClusterUnavailable(f"{type(exc).__name__}: {exc}"[:2000]) from exc
        raise
