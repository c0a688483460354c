"""The `clipsweep` command: run the service (serve, worker, db) and talk to it (submit, status, list)."""

from __future__ import annotations

import json
import logging
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import click
import yaml

from service.client import ApiError, Client
from service.settings import Settings, SettingsError, get_settings

FINISHED = {"succeeded", "failed", "cancelled"}


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@click.group()
@click.version_option(package_name="clipsweep")
def main() -> None:
    """clipsweep: how often does training blow up, and does gradient clipping stop it?"""


# ---- running the service ---------------------------------------------------------------------

def _open_or_exit(settings: Settings) -> None:
    from service.db.open import open_database
    from service.db.schema import SchemaError

    try:
        engine, _ = open_database(settings)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    engine.dispose()


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: settings, 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [default: settings, 8000].")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run a worker (off when workers run as their own service).")
def serve(host: str | None, port: int | None, worker: bool) -> None:
    """Run the API and dashboard, and a worker with them (the embedded default: SQLite, local Ray)."""
    import uvicorn

    from service.api.app import create_app
    from service.embedded import EmbeddedWorker

    _setup_logging()
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = _settings().model_copy(update=overrides)
    _open_or_exit(settings)  # migrate or refuse before anything starts
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that would
    # kill this process before `finally` stops the worker. SystemExit unwinds through it instead.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    embedded = EmbeddedWorker() if worker else None
    if embedded:
        embedded.start()
    click.echo(f"clipsweep dashboard: http://{settings.host}:{settings.port}/")
    click.echo(f"database: {settings.resolved_database_url}")
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    finally:
        if embedded:
            embedded.stop()


@main.command()
@click.option("--exit-with-parent", is_flag=True, hidden=True,
              help="Stop when the parent process is gone (set by `clipsweep serve`).")
def worker(exit_with_parent: bool) -> None:
    """Run a worker alone: claim queued sweeps from the database and train them on Ray."""
    from service.db.open import open_database
    from service.db.schema import SchemaError
    from service.worker import Worker, WorkerAlreadyRunning, hold_sqlite_worker_lock, stop_when_orphaned

    _setup_logging()
    settings = _settings()
    try:
        lock = hold_sqlite_worker_lock(settings.resolved_database_url)  # noqa: F841 (held while we run)
        _, factory = open_database(settings)
    except (SchemaError, WorkerAlreadyRunning) as exc:
        raise click.ClickException(str(exc)) from None
    w = Worker(factory, settings)
    w.install_signal_handlers()
    if exit_with_parent:
        stop_when_orphaned(w.stop)
    w.run_forever()


@main.command(hidden=True)
@click.argument("sweep_id", type=int)
@click.option("--worker-id", required=True, help="The worker that claimed the sweep.")
@click.option("--parent-pid", type=int, default=None, help="Stop when this process is gone.")
def drive(sweep_id: int, worker_id: str, parent_pid: int | None) -> None:
    """Run one claimed sweep to its end in this process: a worker's driver, started by `clipsweep
    worker` when it runs several sweeps at once. Stops (giving the sweep back) on SIGTERM or when
    the worker is gone."""
    from service.db.open import open_database
    from service.worker import execute_sweep, stop_when_orphaned

    _setup_logging()
    settings = _settings()
    _, factory = open_database(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop_when_orphaned(stop, parent_pid)
    execute_sweep(factory, settings, sweep_id, worker_id, stop)


@main.group()
def db() -> None:
    """Database schema: upgrade, or show the current revision."""


@db.command()
def upgrade() -> None:
    """Upgrade the configured database (CLIPSWEEP_DATABASE_URL) to this version's schema."""
    from service.db import schema

    url = _settings().resolved_database_url
    schema.upgrade(url)
    click.echo(f"database at revision {schema.head_revision()}: {url}")


@db.command()
def current() -> None:
    """Print the database's schema revision and the one this version needs."""
    from service.db import schema
    from service.db.session import make_engine

    url = _settings().resolved_database_url
    engine = make_engine(url)
    click.echo(f"database: {schema.current_revision(engine) or 'empty'}; "
               f"this clipsweep needs: {schema.head_revision()}")
    engine.dispose()


# ---- talking to the service ------------------------------------------------------------------

server_option = click.option(
    "--server", envvar="CLIPSWEEP_SERVER_URL", default=None,
    help="clipsweep's URL [env CLIPSWEEP_SERVER_URL; default http://127.0.0.1:8000].")
tolerance_option = click.option(
    "--tolerance", default=0.05, show_default=True, type=float,
    help="Divergence rate a learning rate may have and still count as stable (its 95% upper bound "
         "must be under it): the headline's 'highest stable lr'. Strictly between 0 and 1.")


def _client(server: str | None) -> Client:
    return Client(server or _settings().resolved_server_url)


def _fail(exc: ApiError) -> None:
    raise click.ClickException(str(exc))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def summary_table(summary: dict[str, Any]) -> str:
    rows = []
    for c in summary["cells"]:
        ci = c["divergence_ci95"]
        rate = _pct(c["divergence_rate"]) + (f" [{_pct(ci[0])}-{_pct(ci[1])}]" if ci else "")
        steps = c["median_steps_to_target"]
        rows.append([c["lr"], c["clipping"], f"{c['finished']}/{c['runs']}", c["diverged"], rate,
                     c["converged"], "-" if steps is None else f"{steps:g}"])
    table = _table(["lr", "clipping", "runs", "diverged", "divergence [95% CI]", "converged",
                    "median steps"], rows)
    return table + (f"\n\n{summary['headline']}" if summary.get("headline") else "")


def _progress_line(sweep: dict[str, Any], width: int = 30) -> str:
    p = sweep["progress"]
    share = p["done"] / p["runs_total"] if p["runs_total"] else 0.0
    filled = math.floor(share * width)
    state = sweep["status"]
    if sweep.get("cancel_requested_at") and state == "running":
        state = "cancelling"
    if sweep.get("status_detail"):
        state += f" ({sweep['status_detail']})"
    return (f"[{'#' * filled}{'.' * (width - filled)}] {p['done']}/{p['runs_total']} runs, "
            f"{p['by_outcome'].get('diverged', 0)} diverged, {state}")


def _load_spec(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())  # YAML is a superset of JSON: both load here
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{path} is not valid YAML or JSON: {exc}") from None


@main.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", is_flag=True, help="Show progress until the sweep ends, then its summary.")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between progress checks.")
@tolerance_option
@server_option
def submit(spec_file: Path, wait: bool, poll: float, tolerance: float, server: str | None) -> None:
    """Submit the sweep in SPEC_FILE (YAML or JSON)."""
    client = _client(server)
    try:
        created = client.submit(_load_spec(spec_file))
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
        _fail(exc)


def _wait(client: Client, sweep_id: int, poll: float) -> dict[str, Any]:
    tty = sys.stdout.isatty()
    last = ""
    while True:
        sweep = client.sweep(sweep_id)
        line = _progress_line(sweep)
        if line != last:
            # On a terminal one line redraws in place; in a log each change is a line.
            click.echo(("\r" + line) if tty else line, nl=not tty)
            last = line
        if sweep["status"] in FINISHED:
            if tty:
                click.echo()
            return sweep
        time.sleep(poll)


@main.command()
@click.argument("sweep_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@tolerance_option
@server_option
def status(sweep_id: int, as_json: bool, tolerance: float, server: str | None) -> None:
    """Show a sweep's status, progress and summary."""
    client = _client(server)
    try:
        sweep, summary = client.sweep(sweep_id), client.summary(sweep_id, tolerance)
    except ApiError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps({"sweep": sweep, "summary": summary}, indent=2))
        return
    click.echo(f"sweep {sweep['id']} ({sweep['name']}, task {sweep['task']})")
    click.echo(_progress_line(sweep))
    if sweep["error"]:
        click.echo(f"error: {sweep['error']}")
    click.echo(summary_table(summary))


@main.command()
@click.argument("sweep_id", type=int)
@click.option("--wait", is_flag=True, help="Wait until the worker has stopped the sweep's trials.")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between checks with --wait.")
@server_option
def cancel(sweep_id: int, wait: bool, poll: float, server: str | None) -> None:
    """Cancel a queued or running sweep: trials stop, unfinished runs end cancelled."""
    client = _client(server)
    try:
        sweep = client.cancel(sweep_id)
        click.echo(_progress_line(sweep))
        if wait and sweep["status"] not in FINISHED:
            _wait(client, sweep_id, poll)
    except ApiError as exc:
        _fail(exc)


@main.command(name="list")
@click.option("--limit", default=20, show_default=True)
@server_option
def list_(limit: int, server: str | None) -> None:
    """List sweeps, newest first."""
    try:
        page = _client(server).sweeps(limit=limit)
    except ApiError as exc:
        _fail(exc)
    rows = [[s["id"], s["name"], s["task"], s["status"],
             f"{s['progress']['done']}/{s['progress']['runs_total']}",
             s["progress"]["by_outcome"].get("diverged", 0), s["created_at"][:19]]
            for s in page["items"]]
    click.echo(_table(["id", "name", "task", "status", "done", "diverged", "created"], rows))
    if page["total"] > len(rows):
        click.echo(f"({len(rows)} of {page['total']}; --limit to see more)")


if __name__ == "__main__":
    main()
