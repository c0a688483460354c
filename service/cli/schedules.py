"""`clipsweep schedule …`: nightly (or any cron) sweeps, over HTTP like the sweep commands."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from service.cli.client import ApiError
from service.cli.common import client_for, fail, load_file, main, server_option
from service.cli.output import table

POLICIES = ("concurrency", "catch_up", "starting_deadline", "seed_policy")


@main.group()
def schedule() -> None:
    """Sweeps re-run on a cron expression: create, list, show, pause, resume, trigger, delete."""


@schedule.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cron", default=None, help='When, e.g. "0 2 * * *" or @daily (required unless FILE holds it).')
@click.option("--tz", "timezone", default=None, help="An IANA time zone, e.g. Europe/Berlin [UTC].")
@click.option("--name", default=None, help="The schedule's name [the file's `name`, or the spec's].")
@click.option("--concurrency", type=click.Choice(["skip", "queue", "replace"]), default=None)
@click.option("--catch-up", type=click.Choice(["latest", "none", "all"]), default=None)
@click.option("--starting-deadline", default=None, help="How late a missed fire may be caught up, e.g. 6h.")
@click.option("--seed-policy", type=click.Choice(["same", "fresh"]), default=None)
@server_option
def create(file: Path, cron: str | None, timezone: str | None, name: str | None, concurrency: str | None,
           catch_up: str | None, starting_deadline: str | None, seed_policy: str | None, server: str | None,
           token: str | None) -> None:
    """Schedule the sweep spec in FILE, or a schedule file holding `cron`, `timezone`, the policies
    and `sweep:` (the spec). Options override the file."""
    loaded = load_file(file)
    if not isinstance(loaded, dict):
        raise click.ClickException(f"{file} holds no mapping: give a sweep spec or a schedule with `sweep:`")
    body = dict(loaded) if "sweep" in loaded else {"sweep": loaded, "name": loaded.get("name")}
    given = {"cron": cron, "timezone": timezone, "name": name, "concurrency": concurrency, "catch_up": catch_up,
             "starting_deadline": starting_deadline, "seed_policy": seed_policy}
    body.update({key: value for key, value in given.items() if value is not None})
    if not body.get("cron"):
        raise click.ClickException('say when: --cron "0 2 * * *" (or `cron:` in the file)')
    body["name"] = body.get("name") or body["sweep"].get("task", {}).get("name")
    try:
        made = client_for(server, token).create_schedule(body)
    except ApiError as exc:
        fail(exc)
    click.echo(f"schedule {made['id']} ({made['name']}): {made['description']}; next {_when(made)}")


@schedule.command(name="list")
@server_option
def list_(server: str | None, token: str | None) -> None:
    """List the schedules."""
    try:
        page = client_for(server, token).schedules()
    except ApiError as exc:
        fail(exc)
    rows = [[s["id"], s["name"], s["cron"], s["timezone"], _when(s), s["sweeps_made"]] for s in page["items"]]
    click.echo(table(["id", "name", "cron", "timezone", "next fire", "sweeps"], rows))


@schedule.command()
@click.argument("schedule_id", type=int)
@server_option
def show(schedule_id: int, server: str | None, token: str | None) -> None:
    """A schedule: when it fires next (local time and UTC), its policies, its last fires."""
    client = client_for(server, token)
    try:
        s, fires = client.schedule(schedule_id), client.fires(schedule_id)
    except ApiError as exc:
        fail(exc)
    click.echo(f"schedule {s['id']} ({s['name']}): {s['description']}, {'enabled' if s['enabled'] else 'paused'}")
    click.echo(", ".join(f"{key} {s[key]}" for key in POLICIES) + f"; made by {s['created_by'] or 'no token'}")
    baseline = f"sweep {s['baseline']['sweep_id']}" if s.get("baseline") else "the previous succeeded sweep"
    click.echo("alerts: " + ", ".join(f"{key} {value}" for key, value in s["thresholds"].items())
               + f"; compared with {baseline}")
    zone = ZoneInfo(s["timezone"])
    click.echo(table(["next fire (" + s["timezone"] + ")", "UTC"], [
        [datetime.fromisoformat(t).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"), t] for t in s["next_fire_times"]]))
    rows = [[f["scheduled_for"][:16] + "Z", f["outcome"], f["sweep_id"] or "", f["sweep_status"] or "",
             (f["by_outcome"] or {}).get("diverged", ""), _versus(f.get("comparison")), f["detail"] or ""]
            for f in fires["items"]]
    if rows:
        click.echo(table(["fire time", "outcome", "sweep", "status", "diverged", "vs baseline", "detail"], rows))


def _change(schedule_id: int, changes: dict[str, Any], server: str | None, token: str | None) -> None:
    try:
        s = client_for(server, token).change_schedule(schedule_id, changes)
    except ApiError as exc:
        fail(exc)
    click.echo(f"schedule {s['id']} ({s['name']}): {'enabled, next ' + _when(s) if s['enabled'] else 'paused'}")


@schedule.command()
@click.argument("schedule_id", type=int)
@server_option
def pause(schedule_id: int, server: str | None, token: str | None) -> None:
    """Stop firing until resumed (fire times meanwhile are not caught up)."""
    _change(schedule_id, {"enabled": False}, server, token)


@schedule.command()
@click.argument("schedule_id", type=int)
@server_option
def resume(schedule_id: int, server: str | None, token: str | None) -> None:
    """Fire again, from the next fire time on."""
    _change(schedule_id, {"enabled": True}, server, token)


@schedule.command()
@click.argument("schedule_id", type=int)
@server_option
def trigger(schedule_id: int, server: str | None, token: str | None) -> None:
    """Fire now (marked manual), under the schedule's concurrency policy."""
    try:
        fire = client_for(server, token).trigger(schedule_id)
    except ApiError as exc:
        fail(exc)
    made = f"sweep {fire['sweep_id']} queued" if fire["sweep_id"] else f"no sweep: {fire['detail']}"
    click.echo(f"schedule {schedule_id}: {fire['outcome']}, {made}")


@schedule.command()
@click.argument("schedule_id", type=int)
@server_option
def delete(schedule_id: int, server: str | None, token: str | None) -> None:
    """Delete the schedule; its sweeps stay."""
    try:
        client_for(server, token).delete_schedule(schedule_id)
    except ApiError as exc:
        fail(exc)
    click.echo(f"schedule {schedule_id} deleted; its sweeps stay")


def _versus(comparison: dict[str, Any] | None) -> str:
    """A fire's sweep against its baseline, in a few words (`clipsweep compare` gives the tables)."""
    if comparison is None:
        return ""
    if comparison["baseline_sweep_id"] is None:
        return "not compared"
    found = [f"{len(comparison[key])} {key if len(comparison[key]) > 1 else key[:-1]}"
             for key in ("regressions", "improvements") if comparison[key]]
    return f"{', '.join(found) or 'no change'} vs {comparison['baseline_sweep_id']}"


def _when(schedule: dict[str, Any]) -> str:
    times = schedule["next_fire_times"]
    if not times:
        return "paused"
    local = datetime.fromisoformat(times[0]).astimezone(ZoneInfo(schedule["timezone"]))
    return f"{local:%Y-%m-%d %H:%M %Z} ({times[0][:16]}Z)"


@schedule.group()
def webhook() -> None:
    """Where a schedule's events go: add (prints the signing secret once), list, remove."""


EVENTS = ("regression.detected", "regression.resolved", "sweep.finished", "sweep.failed", "schedule.fire_missed",
          "improvement.detected")


@webhook.command()
@click.argument("schedule_id", type=int)
@click.argument("url")
@click.option("--events", default=None, help=(
    "Comma-separated, of: " + ", ".join(EVENTS) + " [regression.detected, regression.resolved, sweep.failed, "
    "schedule.fire_missed]."))
@server_option
def add(schedule_id: int, url: str, events: str | None, server: str | None, token: str | None) -> None:
    """Send the schedule's events to URL, signed the Standard Webhooks way."""
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = [e.strip() for e in events.split(",") if e.strip()]
    try:
        hook = client_for(server, token).add_webhook(schedule_id, body)
    except ApiError as exc:
        fail(exc)
    click.echo(f"webhook {hook['id']} of schedule {schedule_id}: {', '.join(hook['events'])} to {hook['url']}")
    click.echo(f"signing secret (shown this once; keep it where your receiver verifies): {hook['secret']}")


@webhook.command(name="list")
@click.argument("schedule_id", type=int)
@server_option
def list_webhooks(schedule_id: int, server: str | None, token: str | None) -> None:
    """The schedule's webhooks, with their last delivery."""
    client = client_for(server, token)
    try:
        hooks = client.webhooks(schedule_id)
        last = {h["id"]: client.deliveries(schedule_id, h["id"], limit=1)["items"] for h in hooks}
    except ApiError as exc:
        fail(exc)
    rows = [[h["id"], h["url"], ",".join(h["events"]), "enabled" if h["enabled"] else f"off: {h['disabled_reason']}",
             _last(last[h["id"]])] for h in hooks]
    click.echo(table(["id", "url", "events", "state", "last delivery"], rows))


@webhook.command()
@click.argument("schedule_id", type=int)
@click.argument("webhook_id", type=int)
@server_option
def remove(schedule_id: int, webhook_id: int, server: str | None, token: str | None) -> None:
    """Stop sending to a webhook."""
    try:
        client_for(server, token).delete_webhook(schedule_id, webhook_id)
    except ApiError as exc:
        fail(exc)
    click.echo(f"webhook {webhook_id} removed")


def _last(deliveries: list[dict[str, Any]]) -> str:
    if not deliveries:
        return "none yet"
    d = deliveries[0]
    return f"{d['event']} {d['state']} ({d['last_status'] or d['last_error'] or 'not tried yet'})"
