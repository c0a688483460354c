"""What keeps a worker (or a scheduler) from running where it must not: a second one on one
SQLite database, or one outliving the `clipsweep serve` that started it."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
from pathlib import Path
from typing import IO, Literal

from sqlalchemy.engine import make_url

from service.errors import AlreadyRunning

log = logging.getLogger("clipsweep.worker")


def hold_sqlite_lock(database_url: str, role: Literal["worker", "scheduler"]) -> IO[str] | None:
    """SQLite serves one worker and one scheduler (its writes are serialized and it has no SKIP
    LOCKED): take an exclusive lock next to the database file for this process's lifetime, or
    say who holds it. Returns the open lock file (keep it referenced), or None for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).with_name(Path(url.database).name + f".{role}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise AlreadyRunning(
            f"a {role} ({holder}) already runs on the SQLite database {url.database}; SQLite supports "
            f"one {role}. Stop that one, or use PostgreSQL (CLIPSWEEP_DATABASE_URL) to run several.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
    handle.flush()
    return handle


def stop_when_orphaned(stop: threading.Event, parent: int | None = None,
                       poll_seconds: float = 1.0) -> threading.Thread:
    """Set `stop` once this process's parent is gone (its parent pid changes): the worker that
    `clipsweep serve` runs must not outlive it, even when serve is killed with SIGKILL, or it would
    keep training next to the worker of the next serve. Stopping gives the sweep back. `parent`
    is the pid the caller was started by, when known (it may already be gone at this point)."""
    parent = parent if parent is not None else os.getppid()

    def watch() -> None:
        while not stop.wait(poll_seconds):
            if os.getppid() != parent:
                log.warning("the parent process %s is gone; stopping", parent)
                stop.set()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
