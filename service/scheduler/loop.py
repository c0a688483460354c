"""The scheduler runtime (`clipsweep scheduler`, or the child process `clipsweep serve` starts):
ticks that fire what is due (service/lifecycle/schedules.py), with sleeps between them computed
from the next fire time and capped at 60 s, so a schedule made or changed meanwhile is seen
within a minute; and beside them the notifier (alerts and webhooks, scheduler/notifier.py).
Stops between ticks on SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Schedule
from service.db.session import session_scope
from service.lifecycle.alerts import fire_missed
from service.lifecycle.schedules import fire_due
from service.lifecycle.submit import Limits
from service.scheduler.notifier import Notifier
from service.settings import Settings

log = logging.getLogger("clipsweep.scheduler")

MAX_SLEEP_SECONDS = 60.0


class Scheduler:
    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings
        self.stop = threading.Event()

    def tick(self, at: datetime) -> float:
        """Fire what is due at `at`; the seconds until the next fire time, at most MAX_SLEEP_SECONDS."""
        with session_scope(self.factory) as session:
            for fire in fire_due(session, at, limits=Limits.of(self.settings),
                                 heartbeat_timeout=self.settings.heartbeat_timeout_seconds):
                log.info("schedule %s, fire time %s: %s%s%s", fire.schedule_id, fire.scheduled_for.isoformat(),
                         fire.outcome.value, f", sweep {fire.sweep_id}" if fire.sweep_id else "",
                         f" ({fire.detail})" if fire.detail else "")
                if fire.sweep_id is None:
                    fire_missed(session, session.get_one(Schedule, fire.schedule_id), fire.scheduled_for,
                                fire.outcome.value, fire.detail, at, self.settings.resolved_server_url)
            following = session.scalar(select(func.min(Schedule.next_fire_at))
                                       .where(Schedule.enabled, Schedule.deleted_at.is_(None)))
        if following is None:
            return MAX_SLEEP_SECONDS
        return min(MAX_SLEEP_SECONDS, max(0.0, (following - now()).total_seconds()))

    def run_forever(self) -> None:
        notifier = threading.Thread(target=Notifier(self.factory, self.settings).run_forever, args=(self.stop,),
                                    name="notifier", daemon=True)
        notifier.start()
        log.info("scheduler running")
        while not self.stop.is_set():
            try:
                wait = self.tick(now())
            except Exception:  # the database is away: try again shortly, never die of it
                log.exception("scheduler tick failed")
                wait = 5.0
            self.stop.wait(wait)
        notifier.join(timeout=self.settings.webhook_timeout_seconds + 5)
        log.info("scheduler stopped")

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
