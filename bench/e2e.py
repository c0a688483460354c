"""End-to-end benchmark: the service against the engine alone and against plain Ray Tune.

    python bench/e2e.py                     # the issue's workload (long: see (c) below)
    python bench/e2e.py --quick             # smoke run: 4 seeds, 50 steps, under two minutes
    python bench/e2e.py --skip-plain-tune   # leave out (c), by far the slowest part

The same runs (adding, T=50, hidden 64, batch 32, learning rates 0.01 and 0.05 × clipping {none,
norm 1.0} × 64 seeds, 500 steps: 256 runs) are trained three ways, measured side by side:

(a) the service: a real `clipsweep serve` (embedded worker, embedded SQLite in a fresh data
    directory, local Ray) on a free loopback port; the sweep is POSTed to /api/v1/sweeps and
    GET /api/v1/sweeps/{id} is polled until it ends. Timed from the POST to the first answer that
    says it finished. Not timed: the server's start-up and a one-step warm-up sweep before it (the
    worker starts Ray on its first sweep; a running service has done that long ago).
(b) the engine alone: trainers.vectorized.run_chunk over the same trials (same configs, same seed
    chunks, planned by service.worker.planning), one after another in this process, no Ray, no database.
(c) what a user would write without clipsweep: plain Ray Tune, one trial per run (a grid of
    lr × clipping × seed), a function trainable that calls trainers.loop.run_seed and reports, and
    Ray's defaults (1 CPU per trial, no actor reuse, Tune's CSV/JSON/TensorBoard loggers). Only the
    console output (verbose=0) and the storage path (a temporary directory) are set. ray.init is
    timed apart, as (a)'s start-up is. Each trial starts a fresh worker process that imports torch:
    in the quick run that cost about 5 s a trial on 2 cores, so 256 trials take many minutes.

The targets of the issue: (a)/(b) ≤ 1.25 (the service costs at most a quarter on top of the
engine) and (c)/(a) ≥ 5. Every way must give every run an outcome, and (a) and (b), which train the
same seeds deterministically with the same code, must agree on the outcome of every run.

It also measures the result writer (service.lifecycle.runs.store_results, called as the worker's
ResultBuffer calls it: batches of 64 runs, one transaction each) with synthetic results shaped like the Ray
adapter's, into a fresh SQLite file and a fresh PostgreSQL database (created on the server at
CLIPSWEEP_TEST_POSTGRES_URL, default the test suite's, and dropped after), both at the schema
revision the service needs. From the SQLite rate it estimates the share of (a)'s wall time spent
writing points.

Learning rates: at 0.01 and 0.05 no seed diverges within 500 steps (a probe on 8 seeds: at 0.3
half the unclipped seeds diverge within 7 steps, none clipped), so every run does all its steps and
the work is the same in every way; `--lrs 0.05 0.3` makes the outcome check cover divergence.
Needs the whole service installed (ray, fastapi, sqlalchemy, psycopg, httpx).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import math
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Nothing here may import service.worker.tune_runner: it turns Tune's default loggers off for its
# process, and (c) runs in this process with Ray's defaults.
from service.grid import cells
from service.spec import SweepSpec, parse_spec
from service.worker.planning import plan_trials
from trainers import TrainConfig
from trainers.vectorized import run_chunk

SEQ_LEN, HIDDEN, BATCH = 50, 64, 32
POSTGRES_ADMIN_URL = os.environ.get("CLIPSWEEP_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TRAINED = {"converged", "diverged", "unconverged"}

# (cell_index, seed) -> outcome
Outcomes = dict[tuple[int, int], str]


def sweep_spec(args: argparse.Namespace, *, name: str = "e2e-bench") -> dict[str, Any]:
    return {
        "name": name,
        "task": {"name": "adding", "params": {"seq_len": SEQ_LEN, "hidden": HIDDEN}},
        "optimizer": {"name": "sgd", "momentum": 0.0},
        "learning_rates": args.lrs,
        "clipping": [{"method": "none"}, {"method": "norm", "max_norm": 1.0}],
        "seeds": args.seeds,
        "budget": {"max_steps": args.steps, "batch_size": BATCH},
        "record_every": 10,
        "resources": {"cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": 0,
                      "max_seeds_per_trial": args.chunk, "device": "cpu"},
    }


def warmup_spec(args: argparse.Namespace) -> dict[str, Any]:
    spec = sweep_spec(args, name="e2e-warmup")
    spec.update(learning_rates=args.lrs[:1], clipping=[{"method": "none"}], seeds=1,
                budget={"max_steps": 1, "batch_size": BATCH})
    return spec


# ---- (a) the service ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `clipsweep serve` subprocess with its embedded worker, on a fresh data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / "serve.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
        env["CLIPSWEEP_DATA_DIR"] = str(data_dir)
        start = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=60)
        self._wait_ready()
        self.startup_s = time.perf_counter() - start

    def _wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clipsweep serve exited early:\n{self.log_tail()}")
            try:
                if self.http.get("/api/v1/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"clipsweep serve did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 5000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def submit_and_wait(self, spec: dict[str, Any], poll: float, timeout: float) -> tuple[dict[str, Any], float]:
        """POST the spec, poll until the sweep ends; the sweep and the seconds from POST to the
        first answer that says it ended."""
        start = time.perf_counter()
        response = self.http.post("/api/v1/sweeps", json=spec)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/v1/sweeps answered {response.status_code}: {response.text}")
        sweep_id = response.json()["id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sweep = self.http.get(f"/api/v1/sweeps/{sweep_id}").json()
            if sweep["finished"]:
                return sweep, time.perf_counter() - start
            time.sleep(poll)
        raise TimeoutError(f"sweep {sweep_id} did not end within {timeout:.0f} s:\n{self.log_tail()}")

    def runs(self, sweep_id: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.http.get(f"/api/v1/sweeps/{sweep_id}/runs",
                                 params={"limit": 1000, "offset": len(out)}).json()
            out.extend(page["items"])
            if len(out) >= page["total"] or not page["items"]:
                return out

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()  # serve stops its worker, which stops its local Ray
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def count_points(db_path: Path, sweep_id: int) -> int:
    from sqlalchemy import func, select

    from service.db.models import Run, RunPoint
    from service.db.session import make_engine

    engine = make_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(RunPoint).join(Run, Run.id == RunPoint.run_id)
                                .where(Run.sweep_id == sweep_id)).scalar_one()
    finally:
        engine.dispose()


def way_service(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    server = Server(workdir / "serve")
    try:
        print(f"(a) server start-up (not timed below): {server.startup_s:.1f} s", flush=True)
        warm, warm_s = server.submit_and_wait(warmup_spec(args), poll=0.1, timeout=300)
        if warm["status"] != "succeeded":
            raise RuntimeError(f"the warm-up sweep ended {warm['status']}: {warm['error']}\n{server.log_tail()}")
        print(f"(a) warm-up sweep, 1 run of 1 step, starts Ray in the worker (not timed below): {warm_s:.1f} s",
              flush=True)
        sweep, wall = server.submit_and_wait(sweep_spec(args), poll=args.poll, timeout=args.timeout)
        runs = server.runs(sweep["id"])
    finally:
        server.stop()
    created = datetime.datetime.fromisoformat(sweep["created_at"])
    finished = datetime.datetime.fromisoformat(sweep["finished_at"]) if sweep["finished_at"] else None
    points = count_points(server.data_dir / "clipsweep.sqlite3", sweep["id"])
    return {
        "wall": wall, "status": sweep["status"], "error": sweep["error"],
        "own": (finished - created).total_seconds() if finished else math.nan,
        "outcomes": {(r["cell_index"], r["seed"]): r["outcome"] for r in runs},
        "failed": [r for r in runs if r["outcome"] == "failed"][:3],
        "points": points,
    }


# ---- (b) the engine alone ------------------------------------------------------------------------

def way_engine(args: argparse.Namespace) -> dict[str, Any]:
    spec = parse_spec(sweep_spec(args))
    grid = cells(spec)
    pending = [(cell.index, seed) for cell in grid for seed in spec.seed_list]
    configs = {cell.index: cell.config.to_dict() for cell in grid}
    trials = plan_trials(configs, pending, spec.resources.max_seeds_per_trial)  # the service's own chunks
    configs = [TrainConfig.from_dict(t.train_config) for t in trials]  # as the Ray adapter makes them
    list(run_chunk(dataclasses.replace(configs[0], max_steps=5), trials[0].seeds[:2], vectorize=True))  # warm-up
    outcomes: Outcomes = {}
    start = time.perf_counter()
    for trial, config in zip(trials, configs):
        for seed, result in run_chunk(config, trial.seeds):
            outcomes[(trial.cell_index, seed)] = result.outcome.value
    wall = time.perf_counter() - start
    return {"wall": wall, "outcomes": outcomes, "trials": len(trials),
            "chunk_sizes": sorted({len(t.seeds) for t in trials})}


# ---- (c) plain Ray Tune ----------------------------------------------------------------------------

def plain_config(point: dict[str, Any]) -> TrainConfig:
    """What a user writes: the training of one grid point, from the point's plain values."""
    from trainers import ClippingConfig, ConvergenceConfig

    return TrainConfig(
        task="adding", task_params={"seq_len": point["seq_len"], "hidden": point["hidden"]},
        lr=point["lr"], clipping=ClippingConfig(point["clip"]["method"], point["clip"]["params"]),
        max_steps=point["steps"], batch_size=point["batch_size"],
        convergence=ConvergenceConfig(eval_every=50), record_every=10, device="cpu",
    )


def plain_trainable(point: dict[str, Any]) -> None:
    """A plain function trainable: train one seed, report its outcome."""
    from ray import tune

    from trainers import run_seed

    result = run_seed(plain_config(point), point["seed"])
    tune.report({"outcome": result.outcome.value, "steps_done": result.steps_done,
                 "diverged_at_step": result.diverged_at_step, "final_loss": result.final_loss})


def same_training(a: TrainConfig, b: TrainConfig) -> bool:
    """Equal configs once the task's parameters are resolved with their defaults."""
    from trainers.tasks import build_task

    def resolved(c: TrainConfig) -> TrainConfig:
        return dataclasses.replace(c, task_params=dataclasses.asdict(build_task(c.task, c.task_params).params))

    return resolved(a) == resolved(b)


def way_plain_tune(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import ray
    from ray import tune

    spec = parse_spec(sweep_spec(args))
    grid = cells(spec)
    index_of = {(c.lr, c.clipping.method): c.index for c in grid}
    clips = [{"method": c.clipping.method, "params": dict(c.clipping.params)} for c in grid[:len(spec.clipping)]]
    fixed = {"steps": args.steps, "seq_len": SEQ_LEN, "hidden": HIDDEN, "batch_size": BATCH}
    for cell in grid:  # the plain trainable must train exactly what the service trains
        point = {"lr": cell.lr, "clip": {"method": cell.clipping.method, "params": dict(cell.clipping.params)},
                 **fixed}
        assert same_training(plain_config(point), cell.config), f"(c) would train {plain_config(point)}, " \
            f"the service {cell.config}"
    start = time.perf_counter()
    ray.init()
    init_s = time.perf_counter() - start
    print(f"(c) ray.init (not timed below): {init_s:.1f} s", flush=True)
    try:
        tuner = tune.Tuner(
            plain_trainable,
            param_space={"lr": tune.grid_search(list(spec.learning_rates)), "clip": tune.grid_search(clips),
                         "seed": tune.grid_search(spec.seed_list), **fixed},
            run_config=tune.RunConfig(name="plain", storage_path=str(workdir / "plain_ray_results"), verbose=0),
        )
        start = time.perf_counter()
        results = tuner.fit()
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    outcomes: Outcomes = {}
    for result in results:
        if result.error is None and result.metrics and "outcome" in result.metrics:
            cfg = result.config
            outcomes[(index_of[(cfg["lr"], cfg["clip"]["method"])], cfg["seed"])] = result.metrics["outcome"]
    return {"wall": wall, "outcomes": outcomes, "errors": len(results.errors)}


# ---- database write throughput -----------------------------------------------------------------

def synthetic_results(spec: SweepSpec, steps: int, record_every: int, rng: random.Random) -> list[Any]:
    """RunReports as trainers.ray_adapter.result_payload's reach the service: one in eight diverged
    early with a NaN last loss, the rest ran every step (points every `record_every` steps and the last)."""
    from service.lifecycle.report import parse_report

    out = []
    for cell in cells(spec):
        for seed in spec.seed_list:
            diverged = rng.random() < 0.125
            last = rng.randrange(1, steps) if diverged else steps - 1
            kept = sorted({*range(0, last + 1, record_every), last})
            points = [[s, 0.05 + rng.random() * 0.1, rng.random() * 3.0, rng.random() < 0.3] for s in kept]
            if diverged:
                points[-1][1], points[-1][2] = math.nan, None
            run = {"outcome": "diverged" if diverged else "unconverged",
                   "trigger": "nonfinite_loss" if diverged else None,
                   "diverged_at_step": last if diverged else None, "converged_at_step": None,
                   "steps_done": last if diverged else steps, "initial_loss": 0.2,
                   "final_loss": points[-1][1], "min_loss": 0.05, "final_eval_loss": 0.06,
                   "clipped_steps": sum(p[3] for p in points), "max_grad_norm": 3.0,
                   "norm_histogram": {10: len(points)}, "divergence_grad_norm": 3.0 if diverged else None,
                   "points": points}
            out.append(parse_report({"cell_index": cell.index, "seed": seed, "run": run, "device": "cpu",
                                     "node": "bench"}))
    return out


def time_statements(engine: Any) -> dict[str, list[float]]:
    """From now on, seconds and calls per kind of statement ("UPDATE runs", "INSERT run_points")
    spent in the DB driver, measured around each cursor execute (SQLAlchemy's own work and the
    commits are outside it)."""
    from sqlalchemy import event

    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        elapsed = time.perf_counter() - conn.info["bench_started"].pop()
        match = re.match(r"\s*(\w+)\s+(?:INTO\s+|FROM\s+)?(\w+)", statement, re.IGNORECASE)
        key = f"{match.group(1).upper()} {match.group(2)}" if match else statement[:20]
        totals[key][0] += elapsed
        totals[key][1] += 1

    return totals


def measure_writes(url: str, *, embedded: bool, args: argparse.Namespace) -> dict[str, Any]:
    """How fast store_results writes points into the empty database at `url`."""
    from service.db.schema import ensure_schema, upgrade
    from service.db.session import make_engine, make_session_factory, session_scope
    from service.lifecycle.runs import store_results
    from service.lifecycle.submit import Limits, create_sweep

    if not embedded:
        upgrade(url)  # what the operator's `clipsweep db upgrade` does; the embedded default does it itself
    engine = make_engine(url)
    try:
        ensure_schema(engine, url, auto_upgrade=embedded)  # as service.db.open.open_database does
        factory = make_session_factory(engine)
        seeds = max(1, args.write_runs // (len(args.lrs) * 2))
        spec = parse_spec({**sweep_spec(args), "seeds": seeds, "budget": {"max_steps": 500, "batch_size": BATCH}})
        with session_scope(factory) as session:
            sweep_id = create_sweep(session, spec, limits=Limits(max_runs=10**9)).id
        results = synthetic_results(spec, 500, spec.record_every, random.Random(0))
        points = sum(len(r.run.points) for r in results)
        statements = time_statements(engine)
        start = time.perf_counter()
        stored = 0
        for i in range(0, len(results), args.write_batch):  # as ResultBuffer.flush: one transaction a batch
            with session_scope(factory) as session:
                stored += store_results(session, sweep_id, results[i:i + args.write_batch])
        elapsed = time.perf_counter() - start
        assert stored == len(results), f"stored {stored} of {len(results)} results"
        return {"rate": points / elapsed, "points": points, "seconds": elapsed, "statements": dict(statements)}
    finally:
        engine.dispose()


def measure_postgres(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import create_engine, text

    name = f"clipsweep_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            return measure_writes(POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", embedded=False, args=args)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# ---- report ------------------------------------------------------------------------------------------

def cell_counts(outcomes: Outcomes) -> dict[int, collections.Counter[str]]:
    counts: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for (cell_index, _seed), outcome in outcomes.items():
        counts[cell_index][outcome] += 1
    return counts


def fmt_counts(counter: collections.Counter[str] | None) -> str:
    if not counter:
        return "-"
    return " ".join(f"{k}={counter[k]}" for k in sorted(counter))


def report_writes(backend: str, measured: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"store_results into {backend}: {measured['rate']:,.0f} points/s ({measured['points']} points of "
          f"{args.write_runs} runs in {measured['seconds']:.2f} s, {args.write_batch} runs a transaction) · "
          f"{verdict(measured['rate'] >= 100_000)} (≥ 100,000/s)")
    in_driver = sum(seconds for seconds, _ in measured["statements"].values())
    parts = ", ".join(f"{key} {seconds:.2f} s in {calls:.0f} executes"
                      for key, (seconds, calls) in sorted(measured["statements"].items()))
    print(f"    in the driver: {parts}; the other {measured['seconds'] - in_driver:.2f} s is SQLAlchemy, "
          f"building the rows, and commits", flush=True)


def measure_and_report_writes(args: argparse.Namespace, workdir: Path) -> float:
    """The writer on SQLite, then on PostgreSQL unless skipped or down; returns SQLite's rate."""
    import sqlalchemy

    sqlite = measure_writes(f"sqlite:///{workdir / 'writes.sqlite3'}", embedded=True, args=args)
    report_writes("SQLite", sqlite, args)
    if not args.skip_postgres:
        try:
            report_writes("PostgreSQL", measure_postgres(args), args)
        except sqlalchemy.exc.OperationalError as exc:
            print(f"store_results into PostgreSQL: skipped, the server at {POSTGRES_ADMIN_URL} did not answer: "
                  f"{str(exc).splitlines()[0]}")
    return sqlite["rate"]


def verdict(ok: bool) -> str:
    return "meets the target" if ok else "MISSES the target"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4 seeds, 50 steps, 512 runs written (unless given explicitly)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell [64; --quick 4]")
    parser.add_argument("--steps", type=int, default=None, help="steps per run [500; --quick 50]")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.05])
    parser.add_argument("--chunk", type=int, default=64, help="max_seeds_per_trial of the sweep [64]")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between GETs while (a) runs")
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest wait for (a)'s sweep")
    parser.add_argument("--skip-plain-tune", action="store_true", help="leave out (c)")
    parser.add_argument("--skip-postgres", action="store_true", help="measure writes on SQLite only")
    parser.add_argument("--write-runs", type=int, default=None,
                        help="synthetic runs written per database [4096; --quick 512]")
    parser.add_argument("--writes-only", action="store_true",
                        help="measure only the results writer (seconds, not the half hour of (a), (b), (c))")
    parser.add_argument("--write-batch", type=int, default=64, help="runs per store_results transaction")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    args.seeds = args.seeds or (4 if args.quick else 64)
    args.steps = args.steps or (50 if args.quick else 500)
    args.write_runs = args.write_runs or (512 if args.quick else 4096)

    import ray
    import sqlalchemy

    spec = parse_spec(sweep_spec(args))
    total = spec.run_count
    grid = cells(spec)
    print(f"# {platform.node()} · {platform.processor() or platform.machine()} · {os.cpu_count()} cores · "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads) · ray {ray.__version__} · "
          f"sqlalchemy {sqlalchemy.__version__} · {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"# adding T={SEQ_LEN} hidden={HIDDEN} batch={BATCH} steps={args.steps} · lr {args.lrs} × "
          f"{{none, norm 1.0}} × {args.seeds} seeds = {total} runs · max_seeds_per_trial {args.chunk} · "
          f"cpus_per_trial {args.cpus_per_trial:g}" + (" · QUICK (not the issue's workload)" if args.quick else ""))

    workdir = Path(tempfile.mkdtemp(prefix="clipsweep-e2e-"))
    problems: list[str] = []
    try:
        if args.writes_only:
            measure_and_report_writes(args, workdir)
            return
        a = way_service(args, workdir)
        print(f"(a) service: {a['wall']:.2f} s from POST to finished (the service's own created→finished: "
              f"{a['own']:.2f} s), sweep {a['status']}, {a['points']} points stored", flush=True)
        if a["status"] != "succeeded":
            problems.append(f"(a) sweep ended {a['status']}: {a['error']}; e.g. {a['failed']}")

        b = way_engine(args)
        print(f"(b) engine, {b['trials']} chunks of {b['chunk_sizes']} seeds one after another in one process "
              f"({torch.get_num_threads()} torch threads): {b['wall']:.2f} s", flush=True)

        c = None
        if not args.skip_plain_tune:
            c = way_plain_tune(args, workdir)
            print(f"(c) plain Ray Tune, {total} trials of one run, Ray's defaults: {c['wall']:.2f} s"
                  + (f", {c['errors']} trials errored" if c["errors"] else ""), flush=True)

        sqlite_rate = measure_and_report_writes(args, workdir)

        print()
        print("outcomes per cell (a) service / (b) engine" + (" / (c) plain Tune" if c else ""))
        ways = {"a": a["outcomes"], "b": b["outcomes"], **({"c": c["outcomes"]} if c else {})}
        counts = {k: cell_counts(v) for k, v in ways.items()}
        for cell in grid:
            row = " / ".join(fmt_counts(counts[k].get(cell.index)) for k in ways)
            print(f"  lr {cell.lr:<6g} {cell.label:<20} {row}")
        for key, outcomes in ways.items():
            trained = sum(o in TRAINED for o in outcomes.values())
            if trained != total:
                problems.append(f"({key}) gave {trained} of {total} runs a trained outcome")
        if counts["a"] != counts["b"]:
            problems.append("(a) and (b) disagree on the outcome counts per cell")
        differ = [key for key in a["outcomes"] if a["outcomes"][key] != b["outcomes"].get(key)]
        if differ:
            problems.append(f"(a) and (b) disagree on {len(differ)} runs, e.g. (cell, seed) {differ[:5]}")
        if c and counts["c"] != counts["a"]:
            # Not a failure: (c) trains each seed with the sequential loop, which the vectorized
            # engine matches to rounding; over many steps a seed near the edge may go either way.
            print("  note: (c) (sequential loop) differs from (a) in some cell's counts")

        print()
        share = a["points"] / sqlite_rate / a["wall"]
        print(f"(a)/(b) = {a['wall'] / b['wall']:.2f} · {verdict(a['wall'] / b['wall'] <= 1.25)} (≤ 1.25)")
        if c:
            print(f"(c)/(a) = {c['wall'] / a['wall']:.2f} · {verdict(c['wall'] / a['wall'] >= 5)} (≥ 5)")
        print(f"share of (a)'s wall time writing points, estimated as {a['points']} points / "
              f"{sqlite_rate:,.0f} points/s (SQLite) / {a['wall']:.2f} s: {share:.2%} · {verdict(share <= 0.05)} "
              f"(≤ 5%; an estimate from the separate write measurement, not a profile of (a))")
        if problems:
            print()
            for problem in problems:
                print(f"CHECK FAILED: {problem}")
            sys.exit(1)
        print(f"checks: every way gave all {total} runs an outcome; (a) and (b) agree on every run")
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
