"""Export benchmark: a finished sweep's points (and runs) as CSV and Parquet, against reading the
same rows from the database.

    python bench/export.py                              # SQLite, 2,000 runs, ~1M points
    python bench/export.py --seeds 500 --record-every 50  # 20,000 runs, ~2M points
    python bench/export.py --database postgresql        # a fresh database, dropped after

Setup, no training: bench/api.py's sweep (10 learning rates × 4 arms × --seeds seeds, synthetic
seeded results stored by service.lifecycle.runs.store_results), then ended as a worker ends it.

Then, --repeat times in turn, each timed to its last byte:
- the baseline, "database read": the sweep's points (run id, step, loss, norm, clipped) in the
  table's own order, on the DBAPI cursor, fetched to the end and nothing done with them: what
  reading them costs at the least, in this process;
- GET …/export?format=csv|parquet&include=points|runs from a real `clipsweep serve --no-worker`
  on loopback, the body read to its end by httpx.

It prints each one's median seconds, its size and MB/s, and its time against the database read's
in the same run (1.00× is an export as fast as the database can hand over its rows).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import httpx
import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import build_sweep, scratch, serve  # noqa: E402  (bench/api.py)

from service.db.open import open_database  # noqa: E402
from service.db.session import session_scope  # noqa: E402
from service.lifecycle.queue import finish_sweep  # noqa: E402
from service.settings import Settings  # noqa: E402

# The points' own columns in the table's order, no sort: the least a reader of them can do.
POINTS_QUERY = """SELECT p.run_id, p.step, p.loss, p.grad_norm, p.clipped
FROM run_points p JOIN runs r ON r.id = p.run_id WHERE r.sweep_id = {sweep_id}"""


def database_read(settings: Settings, sweep_id: int) -> Callable[[], int]:
    """A function that reads the sweep's points with the DBAPI cursor and returns how many."""
    def read() -> int:
        engine, _ = open_database(settings)
        try:
            with engine.connect() as connection:
                cursor = connection.connection.driver_connection.cursor()
                cursor.execute(POINTS_QUERY.format(sweep_id=sweep_id))
                n = 0
                while rows := cursor.fetchmany(10_000):
                    n += len(rows)
                return n
        finally:
            engine.dispose()
    return read


def download(http: httpx.Client, path: str, **params: str) -> Callable[[], int]:
    """A function that GETs `path` and reads its body to the end; returns its size in bytes."""
    def get() -> int:
        size = 0
        with http.stream("GET", path, params=params) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET {path} answered {response.status_code}: {response.read()[:500]!r}")
            for chunk in response.iter_raw():
                size += len(chunk)
        return size
    return get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seeds", type=int, default=50, help="seeds per cell; 40 cells [50: 2,000 runs]")
    parser.add_argument("--record-every", type=int, default=5, help="steps between stored points [5: ~500 per run]")
    parser.add_argument("--repeat", type=int, default=3, help="times each is measured; medians [3]")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # clean up as on Ctrl-C

    print(f"# {platform.node()} · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.2f} · "
          f"{args.database} · sqlalchemy {sqlalchemy.__version__} · {time.strftime('%Y-%m-%d %H:%M %Z')}")
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(scratch(args.database, "export"))
        sweep_id, outcomes, points, setup_s, _ = build_sweep(settings, args.seeds, args.record_every, held=0)
        engine, factory = open_database(settings)
        with session_scope(factory) as session:
            finish_sweep(session, sweep_id)
        engine.dispose()
        print(f"setup: sweep {sweep_id}, {sum(outcomes.values()):,} runs, {points:,} points, "
              f"stored in {setup_s:.1f} s")
        http, _, _ = stack.enter_context(serve(settings.data_dir, settings.database_url))
        api = f"/api/v1/sweeps/{sweep_id}/export"
        measured: dict[str, Callable[[], int]] = {
            "database read of the points (baseline)": database_read(settings, sweep_id),
            "export csv points": download(http, api, format="csv", include="points"),
            "export parquet points": download(http, api, format="parquet", include="points"),
            "export csv runs": download(http, api, format="csv", include="runs"),
            "export parquet runs": download(http, api, format="parquet", include="runs"),
        }
        seconds: dict[str, list[float]] = {what: [] for what in measured}
        sizes: dict[str, int] = {}
        for _ in range(args.repeat):
            for what, call in measured.items():  # in turn, so that a slow spell hits all of them
                start = time.perf_counter()
                sizes[what] = call()
                seconds[what].append(time.perf_counter() - start)
    baseline = statistics.median(seconds["database read of the points (baseline)"])
    csv_size = sizes["export csv points"]
    print(f"{'':<40} {'median s':>9} {'size':>12} {'MB/s':>8} {'vs read':>8}")
    for what, times in seconds.items():
        median = statistics.median(times)
        if what.startswith("database"):  # its size is the CSV it becomes: the rate an export could reach
            size = f"{sizes[what]:,} rows"
            rate = csv_size / median / 1e6
        else:
            size = f"{sizes[what] / 1e6:.1f} MB"
            rate = sizes[what] / median / 1e6
        print(f"{what:<40} {median:>9.2f} {size:>12} {rate:>8.1f} {median / baseline:>7.2f}×")


if __name__ == "__main__":
    main()
