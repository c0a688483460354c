"""API and dashboard benchmark at the issue's scale: a finished sweep of 2,000 runs and ~1M points.

    python bench/api.py                                          # SQLite, the embedded default
    python bench/api.py --database postgresql                    # a fresh database, dropped after
    python bench/api.py --seeds 5 --requests 10 --page-loads 1   # smoke run: 200 runs

Setup, no training: a sweep of 10 learning rates (0.01 to 1, log-spaced) × 4 arms (none, norm 1.0,
value 1.0, autoclip p10) × --seeds [50], 5,000 steps, record_every 5 (~1M points), made by
service.lifecycle.submit.create_sweep (PostgreSQL upgraded first, as `clipsweep db upgrade` does),
given seeded synthetic results by service.lifecycle.runs.store_results in batches of 64 runs, then
claimed and finished through service.lifecycle.queue. Divergence grows with the learning rate and is far rarer when
clipped (one draw per (lr, seed), shared by its arms, as every arm trains the same seeds); runs
converge at varied steps where the learning rate allows; diverged runs stop early with fewer points.

A real `clipsweep serve --no-worker` on a free loopback port is then measured:
- GET /api/v1/sweeps/{id}/summary: 3 warm-ups, then --requests timed one after another (httpx wall
  time, request sent to body read), each with a tolerance of its own so that each is computed, not
  answered from the summaries the API keeps. Target: p95 under 200 ms. For information, as many
  again of the same request, answered from what the API kept.
- for information: GET .../runs?limit=100 and .../cells/0/series (the cell with the most points: its
  seeds with all their points) 5 times each, one .../export?format=csv&include=points read to its end.
- /sweeps/{id} in headless Chromium (Playwright, /usr/bin/chromium), --page-loads times, each in a
  new browser context (cold cache). A load's time is performance.now() in the page (ms since its
  navigation started) when the html element gets data-rendered, which the dashboard sets once every
  chart has drawn, read by a MutationObserver installed before the page's scripts. Target: every
  load (max) under 2 s. No data-rendered within --render-timeout s: reported, and exit status 1.

ratio = measured / target; below 1 meets it. The header gives the cores and load average: the
numbers depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import sqlalchemy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.db import schema
from service.db.open import open_database
from service.db.session import session_scope
from service.grid import cells
from service.lifecycle.queue import claim_next_sweep, finish_sweep
from service.lifecycle.report import RunReport, parse_report
from service.lifecycle.runs import store_results
from service.lifecycle.submit import Limits, create_sweep
from service.settings import Settings
from service.spec import parse_spec
from service.worker.processes import stop_process
from trainers.norm_histogram import norm_bin

POSTGRES_ADMIN_URL = os.environ.get("CLIPSWEEP_TEST_POSTGRES_URL",
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CHROMIUM = os.environ.get("CLIPSWEEP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--disable-default-apps", "--disable-extensions"]
LRS = [round(0.01 * 10 ** (i * 2 / 9), 4) for i in range(10)]
# Each arm, and the learning rate at which half its seeds diverge (a logistic in log lr).
ARMS = [({"method": "none"}, 0.15), ({"method": "norm", "max_norm": 1.0}, 3.0),
        ({"method": "value", "clip_value": 1.0}, 1.0), ({"method": "autoclip", "percentile": 10.0}, 2.0)]
STEPS, RECORD_EVERY, EVAL_EVERY, TARGET_LOSS, BATCH = 5000, 5, 50, 0.01, 64
SUMMARY_TARGET_MS, PAGE_TARGET_MS = 200.0, 2000.0
# Notes the time the dashboard marks the page rendered; runs before the page's own scripts.
# (There is no html element yet when it runs: it watches the document's subtree.)
OBSERVE_RENDERED = """new MutationObserver((_, observer) => {
  if (document.documentElement?.hasAttribute("data-rendered")) {
    window.__renderedAt = performance.now(); observer.disconnect(); }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-rendered"]});"""


def synthetic_run(rng: np.random.Generator, lr: float, method: str, diverges: bool) -> dict[str, Any]:
    """A result shaped like trainers.ray_adapter.result_payload's."""
    initial = 0.15 + 0.1 * rng.random()
    reach = max(EVAL_EVERY, int(200 / lr * math.exp(rng.normal(0, 0.5))))  # steps to the target loss
    converged_at = math.ceil(reach / EVAL_EVERY) * EVAL_EVERY
    if diverges:
        outcome, last = "diverged", int(min(1 + rng.exponential(50 / lr), reach - 1, STEPS - 1))
    elif converged_at < STEPS:
        outcome, last = "converged", converged_at
    else:
        outcome, last = "unconverged", STEPS - 1
    steps = np.unique(np.r_[np.arange(0, last + 1, RECORD_EVERY), last])
    loss = initial * (TARGET_LOSS / initial) ** (steps / reach) * np.exp(rng.normal(0, 0.05, len(steps)))
    norm = np.exp(rng.normal(math.log(0.3 + lr), 0.7, len(steps)))
    if diverges:  # the norms climb over the last fifth before the blow-up
        norm *= 10 ** (3 * np.clip((steps / max(last, 1) - 0.8) / 0.2, 0, 1))
    clip_above = {"none": math.inf, "norm": 1.0, "value": 2.0}  # autoclip at p10 clips ~90% of the steps
    clipped = norm > clip_above[method] if method in clip_above else rng.random(len(steps)) < 0.9
    losses, grads = loss.tolist(), norm.tolist()
    trigger, divergence_norm = None, None
    if diverges:
        trigger = str(rng.choice(["loss_explosion", "nonfinite_loss", "nonfinite_grad"], p=[0.6, 0.25, 0.15]))
        divergence_norm = math.nan if trigger == "nonfinite_grad" else grads[-1] * 10
        losses[-1] = {"loss_explosion": initial * 100 * (1 + 100 * rng.random()),
                      "nonfinite_loss": math.nan}.get(trigger, losses[-1])
        grads[-1] = math.nan if trigger == "nonfinite_grad" else None
    finite = [g for g in grads if g is not None and math.isfinite(g)]
    histogram = collections.Counter(norm_bin(g) for g in finite)
    return {
        "outcome": outcome, "trigger": trigger, "steps_done": STEPS if outcome == "unconverged" else last,
        "diverged_at_step": last if diverges else None,
        "converged_at_step": last if outcome == "converged" else None,
        "initial_loss": initial, "final_loss": losses[-1], "min_loss": float(np.nanmin(loss)),
        "final_eval_loss": None if diverges else losses[-1] * 1.05,
        "clipped_steps": int(clipped.sum()) * RECORD_EVERY,
        "max_grad_norm": math.nan if trigger == "nonfinite_grad" else max(finite + [divergence_norm or 0.0]),
        "divergence_grad_norm": divergence_norm,
        "norm_histogram": {b: n * RECORD_EVERY for b, n in histogram.items()},
        "points": [list(p) for p in zip(steps.tolist(), losses, grads, clipped.tolist())],
    }


def build_sweep(settings: Settings, seeds: int) -> tuple[int, collections.Counter[str], int, float]:
    """The finished sweep's id, its outcome counts, its number of points, and the seconds it took."""
    start = time.perf_counter()
    engine, factory = open_database(settings)
    try:
        spec = parse_spec({"name": "api-bench", "task": {"name": "adding", "params": {"seq_len": 50, "hidden": 64}},
                           "learning_rates": LRS, "clipping": [arm for arm, _ in ARMS], "seeds": seeds,
                           "budget": {"max_steps": STEPS, "batch_size": 32}, "record_every": RECORD_EVERY})
        with session_scope(factory) as session:
            sweep_id = create_sweep(session, spec, limits=Limits(max_runs=10**9)).id
        with session_scope(factory) as session:  # as a worker does: running, started_at set
            claim_next_sweep(session, "bench-api", heartbeat_timeout=3600)
        rng = np.random.default_rng(0)
        draws = rng.random((len(LRS), seeds))  # shared by the arms of one (lr, seed)
        half = {arm["method"]: lr50 for arm, lr50 in ARMS}
        outcomes: collections.Counter[str] = collections.Counter()
        points = 0
        batch: list[RunReport] = []
        for cell in cells(spec):
            p_diverge = 1 / (1 + (half[cell.clipping.method] / cell.lr) ** 2)
            for j, seed in enumerate(spec.seed_list):
                diverges = bool(draws[LRS.index(cell.lr), j] < p_diverge)
                run = synthetic_run(rng, cell.lr, cell.clipping.method, diverges)
                outcomes[run["outcome"]] += 1
                points += len(run["points"])
                batch.append(parse_report({"cell_index": cell.index, "seed": seed, "run": run, "device": "cpu",
                                           "node": "bench-api"}))
                if len(batch) == BATCH:
                    with session_scope(factory) as session:
                        store_results(session, sweep_id, batch)
                    batch = []
        with session_scope(factory) as session:
            store_results(session, sweep_id, batch)
            finish_sweep(session, sweep_id)
    finally:
        engine.dispose()
    return sweep_id, outcomes, points, time.perf_counter() - start


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database at the code's schema revision, dropped afterwards."""
    name = f"bench_api_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        try:
            url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            schema.upgrade(url)  # what `clipsweep db upgrade` does
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def scratch(database: str, name: str) -> Iterator[Settings]:
    """Settings on a data directory of their own and, for `postgresql`, a fresh database: what
    each benchmark runs on, both removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix=f"clipsweep-bench-{name}-"))
    try:
        with postgres_database() if database == "postgresql" else contextlib.nullcontext() as url:
            yield Settings(data_dir=workdir, database_url=url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def serve(data_dir: Path, database_url: str | None) -> Iterator[tuple[httpx.Client, str]]:
    """A `clipsweep serve --no-worker` subprocess on a free loopback port: its client and URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
    env["CLIPSWEEP_DATA_DIR"] = str(data_dir)
    if database_url:
        env["CLIPSWEEP_DATABASE_URL"] = database_url
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--no-worker", "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, timeout=300)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clipsweep serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if http.get("/api/v1/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        yield http, url
    finally:
        http.close()
        stop_process(process, timeout=20)


def timed(http: httpx.Client, path: str, n: int, **params: Any) -> tuple[list[float], int]:
    """Milliseconds of `n` GETs one after another, and the size of the last body."""
    times: list[float] = []
    size = 0
    for _ in range(n):
        start = time.perf_counter()
        response = http.get(path, params=params)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:500]}")
        size = len(response.content)
    return times, size


def page_loads(url: str, n: int, timeout_s: float) -> tuple[list[float], str | None]:
    """Milliseconds from navigation start to data-rendered, one per cold load; or why not."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    times: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for _ in range(n):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                try:
                    page = context.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
                    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
                    page.add_init_script(OBSERVE_RENDERED)
                    page.goto(url, wait_until="commit")
                    try:
                        page.wait_for_selector("html[data-rendered]", state="attached", timeout=timeout_s * 1000)
                    except PlaywrightTimeout:
                        return times, (f"the page did not report rendered: no html[data-rendered] within "
                                       f"{timeout_s:g} s" + "".join(f"\n    {e}" for e in errors[:5]))
                    times.append(page.evaluate("window.__renderedAt ?? performance.now()"))
                finally:
                    context.close()
        finally:
            browser.close()
    return times, None


def p(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def row(what: str, ms: list[float], target: str = "", ratio: float | None = None) -> None:
    judged = "" if ratio is None else f"{ratio:5.2f}  {'meets the target' if ratio < 1 else 'MISSES the target'}"
    print(f"{what:<44} {len(ms):>3} {p(ms, 0.5):>8.1f} {p(ms, 0.95):>8.1f} {max(ms):>8.1f}  {target:<13} {judged}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per cell; 40 cells [50: 2,000 runs]")
    parser.add_argument("--requests", type=int, default=50, help="timed summary requests [50]")
    parser.add_argument("--page-loads", type=int, default=5, help="cold loads of the sweep page; 0 skips it [5]")
    parser.add_argument("--render-timeout", type=float, default=30.0, help="longest wait for a render, s [30]")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up as on Ctrl-C

    print(f"# {platform.node()} · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.2f} · "
          f"{args.database} · sqlalchemy {sqlalchemy.__version__} · {time.strftime('%Y-%m-%d %H:%M %Z')}")
    not_rendered = None
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(scratch(args.database, "api"))
        workdir, url = settings.data_dir, settings.database_url
        sweep_id, outcomes, points, setup_s = build_sweep(settings, args.seeds)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        print(f"setup: sweep {sweep_id}, {sum(outcomes.values())} runs ({counts}), {points:,} points, "
              f"generated and stored in {setup_s:.1f} s")
        http, base = stack.enter_context(serve(workdir, url))
        api = f"/api/v1/sweeps/{sweep_id}"
        timed(http, f"{api}/summary", 3)  # warm-up
        # A new tolerance each time: the API keeps a summary until the sweep changes
        # (service/api/answers.py), and this measures computing one.
        summary = [timed(http, f"{api}/summary", 1, tolerance=0.05 + i * 1e-9)[0][0] for i in range(args.requests)]
        kept, _ = timed(http, f"{api}/summary", args.requests)
        runs, _ = timed(http, f"{api}/runs", 5, limit=100)
        cell = 0  # the lowest learning rate unclipped: no run stops early, the most points
        series, series_size = timed(http, f"{api}/cells/{cell}/series", 5)
        export, export_size = timed(http, f"{api}/export", 1, format="csv", include="points")
        print(f"\n{'request (ms)':<44} {'n':>3} {'p50':>8} {'p95':>8} {'max':>8}  {'target':<13} ratio")
        row("GET summary", summary, "p95 < 200 ms", p(summary, 0.95) / SUMMARY_TARGET_MS)
        row("GET summary, kept from an earlier request", kept)
        row("GET runs?limit=100", runs)
        row(f"GET cells/{cell}/series ({series_size / 1e6:.1f} MB)", series)
        row(f"GET export csv points ({export_size / 1e6:.0f} MB)", export)
        if args.page_loads:
            loads, not_rendered = page_loads(f"{base}/sweeps/{sweep_id}", args.page_loads, args.render_timeout)
            if loads:
                row("page /sweeps/{id} rendered, cold", loads, "max < 2000 ms", max(loads) / PAGE_TARGET_MS)
            if not_rendered:
                print(not_rendered)
    if not_rendered:
        sys.exit(1)


if __name__ == "__main__":
    main()
