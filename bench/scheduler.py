"""How long a scheduler's tick takes as schedules grow: 1,000 then 10,000 stored schedules, of
which 10 are due at each tick, on SQLite or PostgreSQL.

    python bench/scheduler.py                          # PostgreSQL (a fresh database, dropped after)
    python bench/scheduler.py --database sqlite
    python bench/scheduler.py --sizes 1000 10000 --ticks 5

Each tick is Scheduler.tick as `clipsweep scheduler` runs it (find the due schedules, make their
sweeps, commit, find the next fire time); before each, 10 schedules chosen at random are made due
a minute ago. Printed per size: the median and max of --ticks ticks, and the median tick with
nothing due. Target: under 100 ms at 10,000 on PostgreSQL, and growing no faster than the number
of schedules (the ratio of medians printed, at most 10 for 10×).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

from api import scratch  # bench/api.py: a data directory and a database of their own, removed after
from sqlalchemy import insert, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.clock import now  # noqa: E402
from service.db.models import Schedule  # noqa: E402
from service.db.open import open_database  # noqa: E402
from service.db.session import session_scope  # noqa: E402
from service.scheduler.loop import Scheduler  # noqa: E402
from service.spec import parse_spec, resolve_spec  # noqa: E402

SPEC = {"task": {"name": "quadratic"}, "learning_rates": [0.1], "seeds": 1, "budget": {"max_steps": 10}}
DUE_PER_TICK = 10
TARGET_MS = 100.0


def grow_to(factory, size: int) -> None:  # type: ignore[no-untyped-def]
    """Store schedules up to `size`, none due (next fire a day away)."""
    spec = resolve_spec(parse_spec(SPEC)).model_dump(mode="json")
    with session_scope(factory) as session:
        have = len(session.scalars(select(Schedule.id)).all())
        later = now() + timedelta(days=1)
        rows = [{"name": f"bench-{n}", "cron": "0 2 * * *", "timezone": "Europe/Berlin", "spec": spec,
                 "concurrency": "queue", "catch_up": "latest", "starting_deadline_seconds": 21600,
                 "seed_policy": "same", "enabled": True, "next_fire_at": later, "sweeps_made": 0,
                 "created_at": now()} for n in range(have, size)]
        for start in range(0, len(rows), 1000):
            session.execute(insert(Schedule), rows[start:start + 1000])


def timed_ticks(factory, scheduler: Scheduler, size: int, ticks: int, due: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(ticks):
        with session_scope(factory) as session:
            chosen = random.sample(range(1, size + 1), due)
            if chosen:
                session.execute(update(Schedule).where(Schedule.id.in_(chosen))
                                .values(next_fire_at=now().replace(second=0, microsecond=0) - timedelta(minutes=1)))
        start = time.perf_counter()
        scheduler.tick(now())
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=7)
    args = parser.parse_args()
    random.seed(0)
    print(f"# {platform.node()} · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.2f} · "
          f"{args.database} · {time.strftime('%Y-%m-%d %H:%M %Z')}")
    with contextlib.ExitStack() as stack:
        settings = stack.enter_context(scratch(args.database, "scheduler"))
        engine, factory = open_database(settings)
        stack.callback(engine.dispose)
        scheduler = Scheduler(factory, settings)
        medians = []
        print(f"\n{'schedules':>9}  {'tick, 10 due: median':>21}  {'max':>7}  {'tick, none due':>14}")
        for size in sorted(args.sizes):
            grow_to(factory, size)
            busy = timed_ticks(factory, scheduler, size, args.ticks, DUE_PER_TICK)
            idle = timed_ticks(factory, scheduler, size, args.ticks, 0)
            medians.append(statistics.median(busy))
            print(f"{size:>9,}  {statistics.median(busy):>18.1f} ms  {max(busy):>4.1f} ms  "
                  f"{statistics.median(idle):>11.1f} ms")
    growth = medians[-1] / medians[0]
    print(f"\nmedian tick at {sorted(args.sizes)[-1]:,} ÷ at {sorted(args.sizes)[0]:,}: {growth:.2f} "
          f"(linear would be {sorted(args.sizes)[-1] / sorted(args.sizes)[0]:.0f})")
    print(f"median tick at {sorted(args.sizes)[-1]:,}: {medians[-1]:.1f} ms (target < {TARGET_MS:.0f} ms: "
          f"{'meets it' if medians[-1] < TARGET_MS else 'MISSES it'})")


if __name__ == "__main__":
    main()
