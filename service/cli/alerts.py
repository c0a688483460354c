"""`clipsweep alerts` (list, ack) and `clipsweep compare A B`: regressions, over HTTP."""

from __future__ import annotations

from typing import Any

import click

from service.cli.client import ApiError
from service.cli.common import client_for, fail, main, server_option
from service.cli.output import table

STATES = ("pending", "open", "acknowledged", "resolved", "noted")
KINDS = ("divergence", "slowdown", "frontier", "protection", "improvement")


@main.group(invoke_without_command=True)
@click.option("--schedule", "schedule_id", type=int, default=None, help="Only this schedule's alerts.")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only alerts in this state [all].")
@click.option("--kind", type=click.Choice(KINDS), default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@server_option
@click.pass_context
def alerts(ctx: click.Context, schedule_id: int | None, state: str | None, kind: str | None, limit: int,
           server: str | None, token: str | None) -> None:
    """Regressions (and improvements) the schedules' sweeps showed against their baselines, newest
    first; `clipsweep alerts ack ID` acknowledges one."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        page = client_for(server, token).alerts(schedule_id=schedule_id, state=state, kind=kind, limit=limit)
    except ApiError as exc:
        fail(exc)
    rows = [[a["id"], a["state"], a["kind"], a["schedule_id"], f"{a['sweep_id']} vs {a['baseline_sweep_id']}",
             a["text"]] for a in page["items"]]
    click.echo(table(["id", "state", "kind", "schedule", "sweep vs baseline", "what"], rows))
    if page["total"] > len(rows):
        click.echo(f"({len(rows)} of {page['total']}; --limit shows more)")


@alerts.command()
@click.argument("alert_id", type=int)
@server_option
def ack(alert_id: int, server: str | None, token: str | None) -> None:
    """Acknowledge an open alert: it leaves the open list and still resolves itself."""
    try:
        alert = client_for(server, token).acknowledge(alert_id)
    except ApiError as exc:
        fail(exc)
    click.echo(f"alert {alert['id']} acknowledged: {alert['text']}")


@main.command()
@click.argument("sweep_id", type=int)
@click.argument("baseline_id", type=int)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="False discovery rate [0.05].")
@click.option("--min-effect", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Smallest divergence-rate rise that counts [0.10].")
@click.option("--min-slowdown", type=click.FloatRange(1, 1000), default=None,
              help="Smallest ratio of median steps [1.2].")
@click.option("--tolerance", type=click.FloatRange(1e-6, 1, max_open=True), default=None,
              help="The stability frontier's tolerance [0.05].")
@server_option
def compare(sweep_id: int, baseline_id: int, alpha: float | None, min_effect: float | None,
            min_slowdown: float | None, tolerance: float | None, server: str | None, token: str | None) -> None:
    """Compare sweep SWEEP_ID with BASELINE_ID as the alerts do: per cell the divergence counts,
    the exact one-sided test and its q, the seeds that flipped; then what got worse or better."""
    try:
        found = client_for(server, token).compare(sweep_id, baseline_id, alpha=alpha, min_effect=min_effect,
                                                  min_slowdown=min_slowdown, tolerance=tolerance)
    except ApiError as exc:
        fail(exc)
    click.echo(table(["lr", "clipping", "baseline", "now", "test", "p (worse)", "q", "flipped seeds"],
                     [_cell_row(c) for c in found["cells"]]))
    for label, cells in (("only in this sweep", found["only_current"]), ("only in the baseline",
                                                                         found["only_baseline"])):
        if cells:
            click.echo(f"{label}: " + ", ".join(f"lr {c['lr']:g} {c['clipping']}" for c in cells))
    if found["environment_change"]:
        click.echo("changed: " + ", ".join(found["environment_change"]))
    for title, findings in (("regressions", found["regressions"]), ("improvements", found["improvements"])):
        click.echo(f"\n{title}:" + ("".join(f"\n  {f['text']}" for f in findings) if findings else " none"))


def _cell_row(c: dict[str, Any]) -> list[Any]:
    flipped = c["flipped_seeds"]
    shown = ", ".join(map(str, flipped[:10])) + (f" and {len(flipped) - 10} more" if len(flipped) > 10 else "")
    return [f"{c['lr']:g}", c["clipping"], f"{c['baseline']['diverged']}/{c['baseline']['runs']}",
            f"{c['current']['diverged']}/{c['current']['runs']}", c["test"], f"{c['p_worse']:.2g}",
            f"{c['q_worse']:.2g}", shown or "-"]
