"""The `clipsweep` command: run the service (serve, worker, scheduler, db) and talk to it (submit,
status, cancel, list, schedule).

    common.py   the command group, settings and logging
    run.py      serve, worker, scheduler, drive (hidden), db upgrade|current
    sweeps.py   submit, plan, status, cancel, list: over HTTP, never the database
    schedules.py  schedule create|list|show|pause|resume|trigger|delete, schedule webhook add|list|remove
    alerts.py     alerts, alerts ack, compare: over HTTP too
    tokens.py   token create|list|revoke: API tokens, in the database directly
    output.py   tables, the summary table, the progress line
    client.py   the HTTP client they use
"""

from service.cli import alerts, run, schedules, sweeps, tokens  # noqa: F401  (importing them adds their commands to `main`)
from service.cli.common import main

__all__ = ["main"]
