"""Commands that run the service: serve (API, dashboard, a worker, the scheduler), worker, scheduler,\ndrive, db."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import click

from service.cli.common import main, settings_or_exit, setup_logging
from service.errors import SetupError
from service.settings import Settings

if TYPE_CHECKING:  # the CLI imports nothing heavy until a command needs it
    from sqlalchemy.orm import Session, sessionmaker
    from starlette.types import ASGIApp


def is_loopback(host: str) -> bool:
    """Whether `host` (a listening address) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it could resolve anywhere
        return False


def _open_or_exit(settings: Settings) -> None:
    from service.db.open import open_database

    try:
        engine, _ = open_database(settings)
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None
    engine.dispose()


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: settings, 127.0.0.1].")
@click.option("--port", default=None, type=int, help="Port [default: settings, 8000].")
@click.option("--worker/--no-worker", default=True, show_default=True,
              help="Also run a worker (off when workers run as their own service).")
@click.option("--scheduler/--no-scheduler", "with_scheduler", default=True, show_default=True,
              help="Also run the scheduler (off when it runs as its own service).")
@click.option("--allow-unauthenticated-network-access", "unauthenticated", is_flag=True,
              help="Listen beyond loopback with auth off: anyone who reaches the port may submit and cancel.")
def serve(host: str | None, port: int | None, worker: bool, with_scheduler: bool, unauthenticated: bool) -> None:
    """Run the API and dashboard, and a worker and the scheduler with them (the embedded default:
    SQLite, local Ray)."""
    from service.api.app import create_app
    from service.worker.embedded import EmbeddedWorker

    setup_logging()
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings_or_exit().model_copy(update=overrides)
    if settings.auth == "off" and not is_loopback(settings.host) and not unauthenticated:
        raise click.ClickException(
            f"refusing to listen on {settings.host} with auth off: anyone who reaches it could submit and cancel "
            "sweeps. Turn auth on (CLIPSWEEP_AUTH=token) and create a token with `clipsweep token create --name "
            "NAME --scopes admin`, or listen on 127.0.0.1; --allow-unauthenticated-network-access overrides this")
    _open_or_exit(settings)  # migrate or refuse before anything starts
    _port_free_or_exit(settings.host, settings.port)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that would
    # kill this process before `finally` stops the worker. SystemExit unwinds through it instead.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    # The scheduler's webhooks link to this server's pages.
    os.environ.setdefault("CLIPSWEEP_SERVER_URL", f"http://{settings.host}:{settings.port}")
    children = ([EmbeddedWorker()] if worker else []) + ([EmbeddedWorker(role="scheduler")] if with_scheduler else [])
    for child in children:
        child.start()
    click.echo(f"clipsweep dashboard: http://{settings.host}:{settings.port}/")
    click.echo(f"database: {settings.resolved_database_url}")
    try:
        run_api(create_app(settings), settings)
    finally:
        for child in children:
            child.stop()


def _port_free_or_exit(host: str, port: int) -> None:
    """Refuse before starting anything (and before printing a URL that another process answers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}. Another clipsweep serve (or another "
                f"program) may be using it: stop it, or choose another port with --port") from None


class QuietReads(logging.Filter):
    """Drops the access-log lines of reads that succeeded: a dashboard polls every few seconds and
    would bury the writes and the errors, which stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) == 5:  # uvicorn's access line: client, method, path, HTTP version, status
            method, status = args[1], args[4]
            return not (method in ("GET", "HEAD") and isinstance(status, int) and status < 400)
        return True


def run_api(app: ASGIApp, settings: Settings) -> None:
    """Serve `app` as `clipsweep serve` does (bench/load.py serves its app this way too)."""
    import uvicorn

    logging.getLogger("uvicorn.access").addFilter(QuietReads())
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")


exit_with_parent_option = click.option("--exit-with-parent", is_flag=True, hidden=True,
                                       help="Stop when the parent process is gone (set by `clipsweep serve`).")


@main.command()
@exit_with_parent_option
def worker(exit_with_parent: bool) -> None:
    """Run a worker alone: claim queued sweeps from the database and train them on Ray."""
    from service.worker.loop import Worker

    _run_alone("worker", Worker, exit_with_parent)


@main.command()
@exit_with_parent_option
def scheduler(exit_with_parent: bool) -> None:
    """Run the scheduler alone: make each schedule's sweep when its fire time comes."""
    from service.scheduler.loop import Scheduler

    _run_alone("scheduler", Scheduler, exit_with_parent)


def _run_alone(role: Literal["worker", "scheduler"], runtime: Callable[[sessionmaker[Session], Settings], Any],
               exit_with_parent: bool) -> None:
    """What `clipsweep worker` and `clipsweep scheduler` share: one per SQLite database, the
    database checked, stopped by SIGTERM (or with the serve that started it), run until then."""
    from service.db.open import open_database
    from service.worker.guards import hold_sqlite_lock, stop_when_orphaned

    setup_logging()
    settings = settings_or_exit()
    try:
        lock = hold_sqlite_lock(settings.resolved_database_url, role)  # noqa: F841 (held while we run)
        _, factory = open_database(settings)
    except SetupError as exc:
        raise click.ClickException(str(exc)) from None
    loop = runtime(factory, settings)
    loop.install_signal_handlers()
    if exit_with_parent:
        stop_when_orphaned(loop.stop)
    loop.run_forever()


@main.command(hidden=True)
@click.argument("sweep_id", type=int)
@click.option("--worker-id", required=True, help="The worker that claimed the sweep.")
@click.option("--parent-pid", type=int, default=None, help="Stop when this process is gone.")
def drive(sweep_id: int, worker_id: str, parent_pid: int | None) -> None:
    """Run one claimed sweep to its end in this process: a worker's driver, started by `clipsweep
    worker` when it runs several sweeps at once. Stops (giving the sweep back) on SIGTERM or when
    the worker is gone."""
    from service.db.open import open_database
    from service.worker.execute import execute_sweep
    from service.worker.guards import stop_when_orphaned
    from service.worker.loop import lease_for, tune_runner

    setup_logging()
    settings = settings_or_exit()
    _, factory = open_database(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop_when_orphaned(stop, parent_pid)
    execute_sweep(lease_for(factory, settings, sweep_id, worker_id), tune_runner(settings), settings, stop)


@main.group()
def db() -> None:
    """Database schema: upgrade, or show the current revision."""


@db.command()
def upgrade() -> None:
    """Upgrade the configured database (CLIPSWEEP_DATABASE_URL) to this version's schema."""
    from service.db import schema

    url = settings_or_exit().resolved_database_url
    schema.upgrade(url)
    click.echo(f"database at revision {schema.head_revision()}: {url}")


@db.command()
def current() -> None:
    """Print the database's schema revision and the one this version needs."""
    from service.db import schema
    from service.db.session import make_engine

    url = settings_or_exit().resolved_database_url
    engine = make_engine(url)
    click.echo(f"database: {schema.current_revision(engine) or 'empty'}; "
               f"this clipsweep needs: {schema.head_revision()}")
    engine.dispose()
