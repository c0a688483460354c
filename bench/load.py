"""The API under 50 concurrent clients, against a trivial endpoint of the same process.

    python bench/load.py                          # SQLite, the embedded default
    python bench/load.py --database postgresql    # a fresh database, dropped after
    python bench/load.py --seconds 5 --rounds 1   # smoke run

One server process: the app of `clipsweep serve --no-worker` (auth on, a write token; submit
limits raised so the load is not refused), served by uvicorn as `clipsweep serve` serves it, with
one extra route, GET /bench/trivial, a plain FastAPI handler answering {"ok": true}. Its database
holds a finished sweep of 200 runs (bench/api.py's synthetic sweep, 5 seeds a cell) to summarize.

Each round runs two phases of --seconds, side by side in time:
- trivial: --clients clients (asyncio, one httpx connection pool) GET /bench/trivial in a loop;
- mixed: the same clients, each request drawn as 45% GET /api/v1/sweeps (a page of 20), 45% GET
  the sweep's summary, 10% POST a small sweep (a unique name each; stays queued: no worker).
Printed per phase and request kind: requests, requests/s, p50/p95/p99 (ms), errors (any status but
the expected 200/201, or no answer). Afterwards every 201 is checked to be stored exactly once
(by name, in the database), and no sweep stored without its 201.

Ratios per round (median over --rounds): mixed requests/s ÷ trivial requests/s (target ≥ 0.30),
summary p95 ÷ trivial p95 (target < 10). The header gives the cores and load average: the client
shares the machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from api import build_sweep, p, scratch  # bench/api.py: the same synthetic sweep

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.db.open import open_database  # noqa: E402
from service.db.session import session_scope  # noqa: E402
from service.settings import Settings  # noqa: E402
from service.tokens import create_token  # noqa: E402
from service.worker.processes import stop_process  # noqa: E402

SMALL_SWEEP = {"task": {"name": "quadratic"}, "learning_rates": [0.1], "seeds": 1, "budget": {"max_steps": 10}}
MIX = (("list", 0.45), ("summary", 0.45), ("submit", 0.10))
RATE_TARGET, P95_TARGET = 0.30, 10.0
# Submit limits out of the way: the benchmark measures serving, not the per-token quotas.
SERVER_ENV = {"CLIPSWEEP_AUTH": "token", "CLIPSWEEP_SUBMIT_RATE_PER_MINUTE": "100000000",
              "CLIPSWEEP_MAX_QUEUED_SWEEPS_PER_TOKEN": "100000000"}


def serve_with_trivial_route() -> None:
    """The server process (`--serve`): the service's app plus GET /bench/trivial, as serve runs it."""
    from service.api.app import create_app
    from service.cli.run import run_api
    from service.settings import get_settings

    settings = get_settings()
    app = create_app(settings)

    @app.get("/bench/trivial")
    def trivial() -> dict[str, bool]:
        return {"ok": True}

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    run_api(app, settings)


@contextlib.contextmanager
def server(data_dir: Path, database_url: str | None) -> Any:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIPSWEEP_")}
    env.update(SERVER_ENV, CLIPSWEEP_DATA_DIR=str(data_dir), CLIPSWEEP_PORT=str(port))
    if database_url:
        env["CLIPSWEEP_DATABASE_URL"] = database_url
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=out, stderr=subprocess.STDOUT,
                                   env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/api/v1/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process, timeout=20)


class Phase:
    """Latencies (ms) and errors per request kind, over one phase."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self.created: list[tuple[int, str]] = []
        self.samples: list[str] = []  # the first errors, with when and why
        self.seconds = 0.0

    def total(self) -> int:
        return sum(len(v) for v in self.ms.values()) + sum(self.errors.values())


async def run_phase(url: str, token: str, sweep_id: int, clients: int, seconds: float, mixed: bool) -> Phase:
    phase = Phase()
    rng = random.Random(0)
    kinds, weights = zip(*MIX, strict=True)
    headers = {"Authorization": f"Bearer {token}"}
    # Idle connections expire on the client's side before uvicorn's 5 s keep-alive closes them on
    # the server's: with both at 5 s, a request sent on a connection the server is closing at that
    # moment fails with a reset (a ReadError, a few in 15,000 requests) that says nothing about the API.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        async def one() -> None:
            kind = rng.choices(kinds, weights)[0] if mixed else "trivial"
            name = f"load-{uuid.uuid4().hex}"
            start = time.perf_counter()
            try:
                if kind == "trivial":
                    response = await http.get("/bench/trivial")
                elif kind == "list":
                    response = await http.get("/api/v1/sweeps", params={"limit": 20})
                elif kind == "summary":
                    response = await http.get(f"/api/v1/sweeps/{sweep_id}/summary")
                else:
                    response = await http.post("/api/v1/sweeps", json={**SMALL_SWEEP, "name": name})
                await response.aread()
            except httpx.HTTPError as exc:
                phase.errors[f"{kind}: {type(exc).__name__}"] += 1
                if len(phase.samples) < 5:
                    cause = exc.__cause__ or exc.__context__
                    phase.samples.append(f"{kind} at {time.perf_counter() - started:.2f} s: {exc!r} ({cause!r})")
                return
            if response.status_code != (201 if kind == "submit" else 200):
                phase.errors[f"{kind}: {response.status_code}"] += 1
                return
            phase.ms[kind].append((time.perf_counter() - start) * 1000)
            if kind == "submit":
                phase.created.append((response.json()["id"], name))

        async def client(deadline: float) -> None:
            while time.perf_counter() < deadline:
                await one()

        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        phase.seconds = time.perf_counter() - started
    return phase


def report(title: str, phase: Phase) -> None:
    print(f"\n{title}: {phase.total()} requests in {phase.seconds:.1f} s = {phase.total() / phase.seconds:.0f}/s, "
          f"{sum(phase.errors.values())} errors {dict(phase.errors) or ''}")
    for sample in phase.samples:
        print(f"  error: {sample}")
    for kind, ms in sorted(phase.ms.items()):
        print(f"  {kind:<8} {len(ms):>6} {len(ms) / phase.seconds:>7.1f}/s   p50 {p(ms, 0.5):7.1f}  "
              f"p95 {p(ms, 0.95):7.1f}  p99 {p(ms, 0.99):7.1f} ms")


def stored_once(settings: Settings, created: list[tuple[int, str]]) -> list[str]:
    """Problems: a 201 whose sweep is not stored exactly once under its id, or a load sweep without a 201."""
    engine, _ = open_database(settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text("SELECT id, name FROM sweeps WHERE name LIKE 'load-%'")).all()
    finally:
        engine.dispose()
    stored = collections.Counter((r.id, r.name) for r in rows)
    problems = [f"sweep {i} ({n}) stored {stored[(i, n)]} times" for i, n in created if stored[(i, n)] != 1]
    answered = set(created)
    problems += [f"sweep {i} ({n}) stored without a 201" for (i, n) in stored if (i, n) not in answered]
    return problems


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve_with_trivial_route()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each phase [30]")
    parser.add_argument("--rounds", type=int, default=3, help="trivial + mixed pairs; ratios are their median [3]")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    print(f"# {platform.node()} · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.2f} · "
          f"{args.database} · {args.clients} clients · {args.seconds:.0f} s phases · "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}")
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(scratch(args.database, "load"))
        workdir, url = settings.data_dir, settings.database_url
        sweep_id, outcomes, _, _ = build_sweep(settings, seeds=5)
        engine, factory = open_database(settings)
        with session_scope(factory) as session:
            token = create_token(session, "load", ["write"])[1]
        engine.dispose()
        base = stack.enter_context(server(workdir, url))
        warm_up = asyncio.run(run_phase(base, token, sweep_id, args.clients, 2.0, mixed=True))
        created = list(warm_up.created)  # every load sweep stored needs its 201, the warm-up's too
        rates, p95s, errors = [], [], 0
        for n in range(1, args.rounds + 1):
            trivial = asyncio.run(run_phase(base, token, sweep_id, args.clients, args.seconds, mixed=False))
            mixed = asyncio.run(run_phase(base, token, sweep_id, args.clients, args.seconds, mixed=True))
            report(f"round {n}, trivial", trivial)
            report(f"round {n}, mixed", mixed)
            created += mixed.created
            errors += sum(trivial.errors.values()) + sum(mixed.errors.values())
            rates.append((mixed.total() / mixed.seconds) / (trivial.total() / trivial.seconds))
            p95s.append(p(mixed.ms["summary"], 0.95) / p(trivial.ms["trivial"], 0.95))
        problems = stored_once(settings, created)
        if errors:
            log = (workdir / "serve.log").read_text(errors="replace").splitlines()
            print("\nthe server's log, but for the answered requests:\n" +
                  "\n".join([line for line in log if '" 20' not in line][-40:]))
    rate, p95 = statistics.median(rates), statistics.median(p95s)
    print(f"\nrounds: requests/s ratios {', '.join(f'{r:.2f}' for r in rates)}; "
          f"summary p95 ratios {', '.join(f'{r:.1f}' for r in p95s)}")
    print(f"mixed ÷ trivial requests/s  {rate:5.2f}  (target ≥ {RATE_TARGET}: "
          f"{'meets it' if rate >= RATE_TARGET else 'MISSES it'})")
    print(f"summary p95 ÷ trivial p95   {p95:5.1f}  (target < {P95_TARGET:.0f}: "
          f"{'meets it' if p95 < P95_TARGET else 'MISSES it'})")
    print(f"errors {errors}; {len(created)} sweeps created, "
          f"{'each stored once' if not problems else f'{len(problems)} problems: {problems[:5]}'}")
    if errors or problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
