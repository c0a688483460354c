"""What the CLI prints: tables, the summary table, a sweep's progress line."""

from __future__ import annotations

import math
from typing import Any, Sequence

from service.analysis.numbers import count, duration, percent, rate, steps


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _percent(x: float | None) -> str:
    return "-" if x is None else percent(x)


def summary_table(summary: dict[str, Any]) -> str:
    """The summary's cells, one line each, then its headline."""
    rows = []
    # A search's probes started ahead on a bet lost: undecided with their first seeds, and why.
    behind = {p["cell_index"] for arm in (summary.get("search") or {}).get("arms", []) for p in arm["probes"]
              if p.get("left_behind")}
    for c in summary["cells"]:
        ci = c["divergence_ci95"]
        divergence = _percent(c["divergence_rate"]) + (f" [{_percent(ci[0])}-{_percent(ci[1])}]" if ci else "")
        if c.get("verdict"):  # adaptive seeds: the anytime-valid verdict
            divergence += f" {c['verdict']}" + (" (out of reach)" if c.get("out_of_reach") else "")
            divergence += " (left behind)" if c.get("cell_index") in behind else ""
        median = c["median_steps_to_target"]
        rows.append([c["lr"], c["clipping"], f"{c['finished']}/{c['runs']}", c["diverged"], divergence,
                     c["converged"], "-" if median is None else steps(median)])
    text = table(["lr", "clipping", "runs", "diverged", "divergence [95% CI]", "converged", "median steps"], rows)
    return text + (f"\n\n{summary['headline']}" if summary.get("headline") else "")


def progress_state(sweep: dict[str, Any]) -> str:
    """Runs by outcome so far, and the sweep's state with why it waits: what follows the bar."""
    by = sweep["progress"]["by_outcome"]
    state = sweep["status"]
    if sweep.get("cancel_requested_at") and not sweep["finished"]:
        state = "cancelling"
    if sweep.get("status_detail"):
        state += f" ({sweep['status_detail']})"
    outcomes = ", ".join(f"{by[o]} {o}" for o in ("diverged", "converged", "unconverged", "failed", "cancelled")
                         if by.get(o))
    return f"{outcomes + ', ' if outcomes else ''}{state}"


def pace(progress: dict[str, Any]) -> str:
    """A running sweep's steps, pace and time left, as the dashboard's status line words them:
    "1,200 of 9,600 steps (13%), 850 steps/s, about 10 s left"."""
    p = progress
    done, total = p["steps_done"], p["steps_total"]
    text = f"{count(done)} of {count(total)} steps ({percent(done / total)})"
    if p["steps_per_second"]:
        text += f", {rate(p['steps_per_second'])} steps/s"
    if p["eta_seconds"] is not None:
        text += f", about {duration(p['eta_seconds'])} left"
    return text


def progress_line(sweep: dict[str, Any], width: int = 30) -> str:
    """One line of a sweep's progress for a log; while it runs the bar fills by steps (runs mostly
    end only at the end of their budget) and the steps, pace and time left follow."""
    p = sweep["progress"]
    running = sweep["status"] == "running" and p["steps_total"]
    share = p["steps_done"] / p["steps_total"] if running else p["done"] / p["runs_total"] if p["runs_total"] else 0.0
    filled = math.floor(share * width)
    return (f"[{'#' * filled}{'.' * (width - filled)}] {p['done']}/{p['runs_total']} runs, "
            + (f"{pace(p)}, " if running else "") + progress_state(sweep))


def plan_text(plan: dict[str, Any]) -> str:
    """POST /sweeps/plan's answer in words."""
    tolerance = percent(plan["tolerance"])
    cells = plan["cells"]
    seeds = sorted({c["seeds"] for c in cells})
    lines = [f"{len(cells)} cells of {', '.join(map(count, seeds))} seeds. With no divergence a cell rules out "
             f"rates above {percent(cells[0]['smallest_rate_ruled_out'])}: "
             + (f"enough to show it stable at {tolerance}." if all(c["can_show_stable"] for c in cells) else
                f"not enough to show any cell stable at {tolerance}; that takes at least "
                f"{count(plan['seeds_for_stable'])} seeds.")]
    d = plan["difference"]
    if d is not None:
        needed = "more than 100,000" if d["seeds_needed"] is None else count(d["seeds_needed"])
        lines.append(f"Telling {percent(d['none_rate'])} without clipping from {percent(d['arm_rate'])} with it "
                     f"(paired, exact McNemar at 5%) with {percent(d['power'])} power takes {needed} seeds; "
                     f"these seeds have {percent(d['power_with_these_seeds'])} power.")
    return "\n".join(lines)
