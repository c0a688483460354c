"""API and dashboard benchmark: the requests a sweep's page makes, on sweeps of growing size.

    python bench/api.py                                          # SQLite, 2,000 runs, ~1M points
    python bench/api.py --seeds 50 500 --record-every 500        # 2,000 and 20,000 runs, compared
    python bench/api.py --database postgresql                    # a fresh database, dropped after
    python bench/api.py --seeds 5 --requests 10 --page-loads 1   # smoke run: 200 runs

Setup, no training: per --seeds, a sweep of 10 learning rates (0.01 to 1, log-spaced) × 4 arms
(none, norm 1.0, value 1.0, autoclip p10) × that many seeds, 5,000 steps, a point stored every
--record-every [5] steps (~500 per run), made by service.lifecycle.submit.create_sweep
(PostgreSQL upgraded first, as `clipsweep db upgrade` does), claimed as a worker claims it, and
given seeded synthetic results by service.lifecycle.runs.store_results in batches of 64 runs, all
but the last --requests batches. Divergence grows with the learning rate and is far rarer when
clipped (one draw per (lr, seed), shared by its arms, as every arm trains the same seeds); runs
converge at varied steps where the learning rate allows; diverged runs stop early with fewer points.

A real `clipsweep serve --no-worker` on a free loopback port is then measured (httpx wall time,
request sent to body read), one request after another:
- GET …/summary: the first (every cell computed); after each held-back batch is stored, as a
  worker stores it, one every 2 s, while the page polls as the dashboard does (the sweep, its
  summary and a cell's chart, with the ETags it got: the cells a batch changed are computed
  again, the last batch ends the sweep), with the share of one core the API spent meanwhile; with
  a new tolerance each time (cells kept, the frontier computed); the same request again (the
  answer kept); and with If-None-Match (304, no body).
- GET …/runs?limit=100 and …/cells/0/series (the cell with the most points: a page of its seeds
  with all their points) 5 times each; …/cells/0/chart?width=600 (bands, diverged curves and a
  sample, thinned), its first request and 5 more; one …/export?format=csv&include=points read
  to its end.
- /sweeps/{id} in headless Chromium (Playwright, /usr/bin/chromium), --page-loads times, each in a
  new browser context (cold cache). A load's time is performance.now() in the page (ms since its
  navigation started) when the html element gets data-rendered, which the dashboard sets once every
  chart has drawn, read by a MutationObserver installed before the page's scripts. No
  data-rendered within --render-timeout s: reported, and exit status 1.

With several --seeds, each request's p95 is then given against the first sweep's, measured in the
same run. The header gives the cores and load average: the numbers depend on what else runs.
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
POLL_SECONDS = 2.0  # how often the dashboard polls a running sweep
BUSY: dict[int, float] = {}  # seeds per cell -> the API's share of one core while the page polled
# Notes the time the dashboard marks the page rendered; runs before the page's own scripts.
# (There is no html element yet when it runs: it watches the document's subtree.)
OBSERVE_RENDERED = """new MutationObserver((_, observer) => {
  if (document.documentElement?.hasAttribute("data-rendered")) {
    window.__renderedAt = performance.now(); observer.disconnect(); }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-rendered"]});"""


def synthetic_run(rng: np.random.Generator, lr: float, method: str, diverges: bool,
                  record_every: int = RECORD_EVERY) -> dict[str, Any]:
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
    steps = np.unique(np.r_[np.arange(0, last + 1, record_every), last])
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
        "clipped_steps": int(clipped.sum()) * record_every,
        "max_grad_norm": math.nan if trigger == "nonfinite_grad" else max(finite + [divergence_norm or 0.0]),
        "divergence_grad_norm": divergence_norm,
        "norm_histogram": {b: n * record_every for b, n in histogram.items()},
        "points": [list(p) for p in zip(steps.tolist(), losses, grads, clipped.tolist())],
    }


def build_sweep(settings: Settings, seeds: int, record_every: int,
                held: int) -> tuple[int, collections.Counter[str], int, float, list[list[RunReport]]]:
    """A running sweep with every result stored but the last `held` batches: its id, the outcome
    counts and number of points of all its runs, the seconds it took, and the batches held back
    (stored later, one at a time, as a worker would)."""
    start = time.perf_counter()
    engine, factory = open_database(settings)
    try:
        spec = parse_spec({"name": "api-bench", "task": {"name": "adding", "params": {"seq_len": 50, "hidden": 64}},
                           "learning_rates": LRS, "clipping": [arm for arm, _ in ARMS], "seeds": seeds,
                           "budget": {"max_steps": STEPS, "batch_size": 32}, "record_every": record_every})
        with session_scope(factory) as session:
            sweep_id = create_sweep(session, spec, limits=Limits(max_runs=10**9)).id
        with session_scope(factory) as session:  # as a worker does: running, started_at set
            claim_next_sweep(session, "bench-api", heartbeat_timeout=3600)
        rng = np.random.default_rng(0)
        draws = rng.random((len(LRS), seeds))  # shared by the arms of one (lr, seed)
        half = {arm["method"]: lr50 for arm, lr50 in ARMS}
        outcomes: collections.Counter[str] = collections.Counter()
        points = 0
        batches: list[list[RunReport]] = [[]]
        for cell in cells(spec):
            p_diverge = 1 / (1 + (half[cell.clipping.method] / cell.lr) ** 2)
            for j, seed in enumerate(spec.seed_list):
                diverges = bool(draws[LRS.index(cell.lr), j] < p_diverge)
                run = synthetic_run(rng, cell.lr, cell.clipping.method, diverges, record_every)
                outcomes[run["outcome"]] += 1
                points += len(run["points"])
                if len(batches[-1]) == BATCH:
                    if len(batches) > held:
                        with session_scope(factory) as session:
                            store_results(session, sweep_id, batches.pop(0))
                    batches.append([])
                batches[-1].append(parse_report({"cell_index": cell.index, "seed": seed, "run": run,
                                                 "device": "cpu", "node": "bench-api"}))
        while len(batches) > held:
            with session_scope(factory) as session:
                store_results(session, sweep_id, batches.pop(0))
    finally:
        engine.dispose()
    return sweep_id, outcomes, points, time.perf_counter() - start, batches


def _cpu_seconds(pid: int) -> float:
    """CPU seconds a process has used (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def arrive(settings: Settings, sweep_id: int, batch: list[RunReport], *, last: bool) -> None:
    """Store one held-back batch as the worker does; the last one ends the sweep."""
    engine, factory = open_database(settings)
    try:
        with session_scope(factory) as session:
            store_results(session, sweep_id, batch)
            if last:
                finish_sweep(session, sweep_id)
    finally:
        engine.dispose()


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
def serve(data_dir: Path, database_url: str | None) -> Iterator[tuple[httpx.Client, str, int]]:
    """A `clipsweep serve --no-worker` subprocess on a free loopback port: its client, URL and pid."""
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
        yield http, url, process.pid
    finally:
        http.close()
        stop_process(process, timeout=20)


def timed(http: httpx.Client, path: str, n: int, *, expect: int = 200, headers: dict[str, str] | None = None,
          **params: Any) -> tuple[list[float], int]:
    """Milliseconds of `n` GETs one after another, and the size of the last body."""
    times: list[float] = []
    size = 0
    for _ in range(n):
        start = time.perf_counter()
        response = http.get(path, params=params, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code != expect:
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


def row(what: str, ms: list[float]) -> None:
    print(f"{what:<52} {len(ms):>3} {p(ms, 0.5):>8.1f} {p(ms, 0.95):>8.1f} {max(ms):>8.1f}")


def measure(args: argparse.Namespace, seeds: int) -> dict[str, list[float]]:
    """Every request's times on a sweep of `seeds` per cell (40 cells), printed as a table."""
    results: dict[str, list[float]] = {}
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(scratch(args.database, "api"))
        sweep_id, outcomes, points, setup_s, held = build_sweep(settings, seeds, args.record_every, args.requests)
        counts = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        print(f"\nsetup: sweep {sweep_id}, {sum(outcomes.values()):,} runs ({counts}), {points:,} points, "
              f"generated and stored in {setup_s:.1f} s")
        http, base, pid = stack.enter_context(serve(settings.data_dir, settings.database_url))
        api = f"/api/v1/sweeps/{sweep_id}"
        results["GET summary, first (every cell computed)"] = timed(http, f"{api}/summary", 1)[0]
        # The last batches arrive one every POLL_SECONDS, as from a worker, while a page polls as the
        # dashboard does (the sweep, its summary and the cell's chart, each with the ETag it last
        # got, as the browser sends it): the summary after each batch, and the server's CPU time
        # over the whole while (utime + stime of the uvicorn process) against the wall time.
        arriving, tags = [], {}
        cpu, wall = _cpu_seconds(pid), time.monotonic()
        for i, batch in enumerate(held):
            tick = time.monotonic()
            arrive(settings, sweep_id, batch, last=i == len(held) - 1)
            for path in (api, f"{api}/summary", f"{api}/cells/0/chart"):
                start = time.perf_counter()
                response = http.get(path, headers={"if-none-match": tags[path]} if path in tags else None)
                if path.endswith("summary"):
                    arriving.append((time.perf_counter() - start) * 1000)
                tags[path] = response.headers.get("etag", "")
            time.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - tick)))
        BUSY[seeds] = (_cpu_seconds(pid) - cpu) / (time.monotonic() - wall)
        results["GET summary after a batch of results arrived"] = arriving
        print(f"polling the page every {POLL_SECONDS:g} s while a batch arrives each time: the API used "
              f"{BUSY[seeds]:.1%} of one core")
        # A new tolerance each time: the cells are kept, the frontier and the answer are computed.
        results["GET summary, another tolerance"] = [
            timed(http, f"{api}/summary", 1, tolerance=0.05 + i * 1e-9)[0][0] for i in range(args.requests)]
        results["GET summary, kept from an earlier request"] = timed(http, f"{api}/summary", args.requests)[0]
        tag = http.get(f"{api}/summary").headers["etag"]
        results["GET summary, If-None-Match: 304"] = timed(http, f"{api}/summary", args.requests, expect=304,
                                                           headers={"if-none-match": tag})[0]
        results["GET runs?limit=100"] = timed(http, f"{api}/runs", 5, limit=100)[0]
        cell = 0  # the lowest learning rate unclipped: no run stops early, the most points
        series, series_size = timed(http, f"{api}/cells/{cell}/series", 5)
        results[f"GET cells/{cell}/series ({series_size / 1e6:.1f} MB)"] = series
        # What the page draws of the cell, at a width the polls above did not ask for: the first
        # request computes it, the rest are kept.
        chart, chart_size = timed(http, f"{api}/cells/{cell}/chart", 1, width=800)
        results[f"GET cells/{cell}/chart, first ({chart_size / 1e6:.2f} MB)"] = chart
        results[f"GET cells/{cell}/chart, kept"] = timed(http, f"{api}/cells/{cell}/chart", 5, width=800)[0]
        if args.export:
            export, export_size = timed(http, f"{api}/export", 1, format="csv", include="points")
            results[f"GET export csv points ({export_size / 1e6:.0f} MB)"] = export
        if args.page_loads:
            loads, not_rendered = page_loads(f"{base}/sweeps/{sweep_id}", args.page_loads, args.render_timeout)
            if not_rendered:
                sys.exit(not_rendered)
            results["page /sweeps/{id} rendered, cold"] = loads
    print(f"{'request (ms)':<52} {'n':>3} {'p50':>8} {'p95':>8} {'max':>8}")
    for what, ms in results.items():
        row(what, ms)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seeds", type=int, nargs="+", default=[50],
                        help="seeds per cell, one sweep each, compared with the first; 40 cells [50: 2,000 runs]")
    parser.add_argument("--record-every", type=int, default=RECORD_EVERY,
                        help=f"steps between stored points [{RECORD_EVERY}: ~500 per run]")
    parser.add_argument("--requests", type=int, default=50, help="timed summary requests [50]")
    parser.add_argument("--page-loads", type=int, default=5, help="cold loads of the sweep page; 0 skips it [5]")
    parser.add_argument("--export", action=argparse.BooleanOptionalAction, default=True,
                        help="time the CSV export of the points [yes]")
    parser.add_argument("--render-timeout", type=float, default=30.0, help="longest wait for a render, s [30]")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up as on Ctrl-C

    print(f"# {platform.node()} · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.2f} · "
          f"{args.database} · sqlalchemy {sqlalchemy.__version__} · {time.strftime('%Y-%m-%d %H:%M %Z')}")
    sizes = {seeds: measure(args, seeds) for seeds in args.seeds}
    if len(sizes) > 1:
        first, *others = sizes
        print(f"\np95 against the sweep of {first * 40:,} runs, same run:")
        print(f"{'request':<52} " + " ".join(f"{seeds * 40:>10,}" for seeds in others))
        for i, what in enumerate(sizes[first]):
            base = p(sizes[first][what], 0.95)
            ratios = [p(list(sizes[seeds].values())[i], 0.95) / base for seeds in others]
            print(f"{what.split(' (')[0]:<52} " + " ".join(f"{r:>9.2f}×" for r in ratios))
        print(f"{'share of a core the API used while the page polled':<52} "
              + " ".join(f"{BUSY[seeds]:>10.1%}" for seeds in others) + f"   ({BUSY[first]:.1%} at {first * 40:,} runs)")


if __name__ == "__main__":
    main()
