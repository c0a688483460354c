"""Commands that talk to a running service over HTTP: submit, status, cancel, list. They never
touch the database."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

from service.analysis.numbers import duration, rate
from service.analysis.statistics import MIN_TOLERANCE
from service.cli.client import ApiError, Client
from service.cli.common import client_for, fail, load_file, main, server_option
from service.cli.output import plan_text, progress_line, progress_state, summary_table, table

# Checked here, before anything is submitted: a bad value must not cost a whole sweep's training.
tolerance_option = click.option(
    "--tolerance", default=0.05, show_default=True, type=click.FloatRange(MIN_TOLERANCE, 1, max_open=True),
    help="Divergence rate a learning rate may have and still count as stable (its 95% upper bound "
         "must be under it): the headline's 'highest stable lr'. Strictly between 0 and 1.")


def _wait(client: Client, sweep_id: int, poll: float) -> dict[str, Any]:
    """Poll the sweep until it ends: on a terminal a live bar with the rate and an ETA; in a log,
    one line per change."""
    if sys.stdout.isatty():
        return _wait_live(client, sweep_id, poll)
    last = ""
    while True:
        sweep = client.sweep(sweep_id)
        line = progress_line(sweep)
        if line != last:
            click.echo(line)
            last = line
        if sweep["finished"]:
            return sweep
        time.sleep(poll)


class _StepsPerSecond(ProgressColumn):
    """rich's own estimate of the pace (over its recent updates), written as every screen writes it."""

    def render(self, task: Task) -> Text:
        return Text(f"{rate(task.speed)} steps/s" if task.speed else "", style="progress.data.speed")


class _TimeLeft(ProgressColumn):
    """rich's estimate of the time left at that pace, written as every screen writes it."""

    def render(self, task: Task) -> Text:
        left = task.time_remaining
        return Text(f"about {duration(left)} left" if left is not None and not task.finished else "",
                    style="progress.remaining")


def _wait_live(client: Client, sweep_id: int, poll: float) -> dict[str, Any]:
    # rich draws the bar and estimates the pace and time left from the updates: a well-kept
    # library for what a hand-made bar gets subtly wrong (redraws, widths, smoothing the ETA). The
    # bar fills by steps, which move while runs train; runs mostly end only at their budget.
    columns = (TextColumn("sweep {task.fields[sweep]}"), BarColumn(), TaskProgressColumn(), _StepsPerSecond(),
               _TimeLeft(), TextColumn("{task.fields[runs]} runs, {task.fields[state]}"))
    with Progress(*columns) as bar:
        task = bar.add_task("sweep", total=None, sweep=sweep_id, runs="", state="")
        while True:
            sweep = client.sweep(sweep_id)
            p = sweep["progress"]
            bar.update(task, total=p["steps_total"], completed=p["steps_done"],
                       runs=f"{p['done']}/{p['runs_total']}", state=progress_state(sweep))
            if sweep["finished"]:
                return sweep
            time.sleep(poll)


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Show progress until the sweep ends, then its summary.")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between progress checks.")
@tolerance_option
@server_option
def submit(spec_file: Path, wait: bool, poll: float, tolerance: float, server: str | None,
           token: str | None) -> None:
    """Submit the sweep in SPEC_FILE (YAML or JSON)."""
    client = client_for(server, token)
    try:
        created = client.submit(load_file(spec_file))
        click.echo(f"sweep {created['id']} ({created['name']}): {created['runs_total']} runs queued; "
                   f"{created['url']}")
        if not wait:
            return
        sweep = _wait(client, created["id"], poll)
        click.echo(summary_table(client.summary(created["id"], tolerance)))
        if sweep["error"]:
            click.echo(f"error: {sweep['error']}", err=True)
        if sweep["status"] != "succeeded":
            sys.exit(1)
    except ApiError as exc:
        fail(exc)


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@tolerance_option
@click.option("--none-rate", type=click.FloatRange(0, 1), help="A divergence rate of `none` to plan for.")
@click.option("--arm-rate", type=click.FloatRange(0, 1), help="A clipping arm's rate, to tell from --none-rate.")
@click.option("--power", default=0.8, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="The chance of finding that difference to plan for.")
@server_option
def plan(spec_file: Path, tolerance: float, none_rate: float | None, arm_rate: float | None, power: float,
         server: str | None, token: str | None) -> None:
    """What SPEC_FILE's seeds can show, without training: the lowest divergence rate each cell can
    rule out at the tolerance, and with --none-rate and --arm-rate the paired seeds needed to tell
    the two apart."""
    if (none_rate is None) != (arm_rate is None):
        raise click.UsageError("give --none-rate and --arm-rate together (the two rates to tell apart)")
    params = {"tolerance": tolerance, "power": power}
    if none_rate is not None and arm_rate is not None:
        params.update(none_rate=none_rate, arm_rate=arm_rate)
    try:
        answer = client_for(server, token).plan(load_file(spec_file), params)
    except ApiError as exc:
        fail(exc)
    click.echo(plan_text(answer))


@main.command()
@click.argument("sweep_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@tolerance_option
@server_option
def status(sweep_id: int, as_json: bool, tolerance: float, server: str | None, token: str | None) -> None:
    """Show a sweep's status, progress and summary."""
    client = client_for(server, token)
    try:
        sweep, summary = client.sweep(sweep_id), client.summary(sweep_id, tolerance)
    except ApiError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps({"sweep": sweep, "summary": summary}, indent=2))
        return
    click.echo(f"sweep {sweep['id']} ({sweep['name']}, task {sweep['task']})")
    click.echo(progress_line(sweep))
    if sweep["error"]:
        click.echo(f"error: {sweep['error']}")
    click.echo(summary_table(summary))


@main.command()
@click.argument("sweep_id", type=int)
@click.option("--wait", is_flag=True, help="Wait until the worker has stopped the sweep's trials.")
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Seconds between checks with --wait.")
@server_option
def cancel(sweep_id: int, wait: bool, poll: float, server: str | None, token: str | None) -> None:
    """Cancel a queued or running sweep: trials stop, unfinished runs end cancelled."""
    client = client_for(server, token)
    try:
        sweep = client.cancel(sweep_id)
        click.echo(progress_line(sweep))
        if wait and not sweep["finished"]:
            _wait(client, sweep_id, poll)
    except ApiError as exc:
        fail(exc)


@main.command(name="list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@server_option
def list_(limit: int, server: str | None, token: str | None) -> None:
    """List sweeps, newest first."""
    try:
        page = client_for(server, token).sweeps(limit=limit)
    except ApiError as exc:
        fail(exc)
    rows = [[s["id"], s["name"], s["task"], s["status"],
             f"{s['progress']['done']}/{s['progress']['runs_total']}",
             s["progress"]["by_outcome"].get("diverged", 0), s["created_at"][:19]]
            for s in page["items"]]
    click.echo(table(["id", "name", "task", "status", "done", "diverged", "created"], rows))
    if page["total"] > len(rows):
        click.echo(f"({len(rows)} of {page['total']}; --limit to see more)")
