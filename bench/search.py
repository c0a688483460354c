"""The same question two ways, through the service: each arm's highest stable learning rate at a 5%
tolerance, to within a factor of `ratio`.

    python bench/search.py                              # quadratic, deep_mlp and adding
    python bench/search.py --tasks quadratic deep_mlp   # some of them

(grid)   what a careful user does today: every point of the log grid from `low` to `high`, `ratio`
         apart, with 73 seeds per cell (the fewest whose Wilson bound at no divergence is under 5%),
         the answer being the summary's frontier;
(search) `learning_rates: {search: {low, high, ratio}}` with adaptive seeds (16 at first, 16 more
         per round, at most 512), the answer being each arm's highest point shown stable.

Where the two answers differ, a third sweep referees them: the grid points between the answers and
the one above, that arm only, with `max` (512) seeds each, the answer being that sweep's frontier.
It is timed apart and counted in neither side. (The seeds are the same numbers everywhere, so the
first 73 of a point are the grid's own.)

All are submitted to one fresh `clipsweep serve` (embedded worker, SQLite, local Ray), one after
the other, each timed from its creation to its end as the service records them (`created_at`,
`finished_at`); a one-run warm-up sweep starts Ray first. It prints both answers, both run
counts, both wall times and the ratios. On quadratic the boundary is known (plain gradient
descent diverges exactly above 2/λmax = 0.02), so the unclipped arm's answer must be the largest
grid point below it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from first_sweep_output import fresh_server  # noqa: E402  (a fresh `clipsweep serve` on a free port)

from service.spec_rates import Search  # noqa: E402

TOLERANCE, GRID_SEEDS = 0.05, 73
ADAPTIVE = {"min": 16, "max": 512, "batch": 16}
ARMS = [{"method": "none"}, {"method": "norm", "max_norm": 1.0}]
# Per task: its spec's other parts and the range searched.
TASKS: dict[str, dict[str, Any]] = {
    "quadratic": {"task": {"name": "quadratic"}, "budget": {"max_steps": 1000, "batch_size": 1},
                  "search": {"low": 1e-3, "high": 1.0, "ratio": 1.25}},
    "deep_mlp": {"task": {"name": "deep_mlp", "params": {"depth": 8, "width": 32}},
                 "budget": {"max_steps": 1000, "batch_size": 32}, "convergence": {"target_loss": 0.2, "eval_every": 10},
                 "search": {"low": 1e-3, "high": 1.0, "ratio": 1.25}},
    "adding": {"task": {"name": "adding", "params": {"seq_len": 20, "hidden": 32}},
               "budget": {"max_steps": 300, "batch_size": 32},
               "search": {"low": 1e-2, "high": 3.0, "ratio": 1.25}},
}


def _api(url: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def _run(url: str, spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Submit, wait, and return the summary and the seconds from the sweep's creation to its end
    by the service's own clock (so the half second this polls at adds nothing to either side)."""
    sweep_id = _api(url, "/api/v1/sweeps", spec)["id"]
    while not (sweep := _api(url, f"/api/v1/sweeps/{sweep_id}"))["finished"]:
        time.sleep(0.5)
    seconds = (datetime.datetime.fromisoformat(sweep["finished_at"])
               - datetime.datetime.fromisoformat(sweep["created_at"])).total_seconds()
    if sweep["status"] != "succeeded":
        sys.exit(f"{spec['name']} ended {sweep['status']}: {sweep['error']}")
    return _api(url, f"/api/v1/sweeps/{sweep_id}/summary?tolerance={TOLERANCE}"), seconds


def compare(url: str, name: str) -> dict[str, Any]:
    setting = dict(TASKS[name])
    search = setting.pop("search")
    common = {**setting, "clipping": ARMS, "record_every": 1000, "resources": {"max_seeds_per_trial": 128}}
    grid, grid_s = _run(url, {**common, "name": f"bench-grid-{name}", "learning_rates": Search(**search).points(),
                              "seeds": GRID_SEEDS})
    found, search_s = _run(url, {**common, "name": f"bench-search-{name}", "learning_rates": {"search": search},
                                 "seeds": {"adaptive": ADAPTIVE}})
    answers, paths, referees = {}, {}, {}
    points = Search(**search).points()
    for frontier, arm in zip(grid["frontier"], found["search"]["arms"]):
        answers[frontier["clipping"]] = (frontier["stable_lr"]["value"], arm["highest_stable_lr"], arm["breaks"])
        paths[arm["clipping"]] = [f"{p['lr']:.4g} {p['diverged']}/{p['trained']} {p['verdict']}"
                                  + (" (out of reach)" if p["out_of_reach"] else "") for p in arm["probes"]]
        # Where the two answers differ, the grid's own cells between them: why it stopped lower.
        low, high = sorted(x or 0.0 for x in answers[frontier["clipping"]][:2])
        paths[arm["clipping"]] += [
            f"grid at {c['lr']:.4g}: {c['diverged']}/{c['finished']} (Wilson upper {c['divergence_ci95'][1]:.1%})"
            for c in grid["cells"] if c["clipping"] == frontier["clipping"] and low < c["lr"] <= high]
        if low != high:
            arm_spec = next(a for a in ARMS if a["method"] == frontier["clip_method"])
            referees[frontier["clipping"]] = referee(url, {**common, "clipping": [arm_spec]}, name, points, low, high)
    return {"task": name, "answers": answers, "paths": paths, "referees": referees,
            "grid_runs": sum(c["runs"] for c in grid["cells"]),
            "search_runs": found["search"]["runs"], "grid_s": grid_s, "search_s": search_s}


def referee(url: str, common: dict[str, Any], name: str, points: list[float], low: float,
            high: float) -> str:
    """One arm at the grid points in (low, high] and the next above, with `max` seeds each: what a
    grid with that many seeds answers where the two disagree."""
    above = [p for p in points if p > high][:1]
    rates = [p for p in points if low < p <= high] + above
    summary, seconds = _run(url, {**common, "name": f"bench-referee-{name}", "learning_rates": rates,
                                  "seeds": ADAPTIVE["max"]})
    cells = "; ".join(f"{c['lr']:.4g} {c['diverged']}/{c['finished']} (Wilson upper {c['divergence_ci95'][1]:.1%})"
                      for c in summary["cells"])
    return (f"{ADAPTIVE['max']} seeds per point: {cells}; answer {summary['frontier'][0]['stable_lr']['value']} "
            f"({seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    args = parser.parse_args()
    results = []
    with fresh_server() as url:
        _run(url, {"name": "warm-up", "task": {"name": "quadratic"}, "learning_rates": [0.01], "seeds": 1,
                   "clipping": [{"method": "none"}], "budget": {"max_steps": 1}})
        for name in args.tasks:
            results.append(compare(url, name))
            print(f"{name}: done", file=sys.stderr, flush=True)
    print(f"# bench/search.py, {datetime.date.today().isoformat()}, {platform.machine()}, tolerance {TOLERANCE:.0%}")
    print("| task | arm | grid (73 seeds) answer | search answer | breaks | grid runs | search runs | runs ratio "
          "| grid s | search s | time ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        for arm, (grid_lr, search_lr, breaks) in r["answers"].items():
            print(f"| {r['task']} | {arm} | {grid_lr} | {search_lr} | {breaks or '-'} | {r['grid_runs']:,} "
                  f"| {r['search_runs']:,} | {r['grid_runs'] / r['search_runs']:.1f}× | {r['grid_s']:.1f} "
                  f"| {r['search_s']:.1f} | {r['grid_s'] / r['search_s']:.2f}× |")
    print("\nEach arm's probes in the order they ran (learning rate, diverged/trained, verdict):")
    for r in results:
        for arm, path in r["paths"].items():
            print(f"- {r['task']}, {arm}: " + "; ".join(path))
    referees = [(r["task"], arm, text) for r in results for arm, text in r["referees"].items()]
    if referees:
        print("\nWhere the answers differ, the same arm at the points between them and the one above:")
        for task, arm, text in referees:
            print(f"- {task}, {arm}: {text}")
    if "quadratic" in args.tasks:
        boundary = max(p for p in Search(**TASKS["quadratic"]["search"]).points() if p < 0.02)
        unclipped = next(r for r in results if r["task"] == "quadratic")["answers"]["none"]
        print(f"\nquadratic: the largest grid point below 2/λmax = 0.02 is {boundary}; grid {unclipped[0]}, "
              f"search {unclipped[1]}")


if __name__ == "__main__":
    main()
