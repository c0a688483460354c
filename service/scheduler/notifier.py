"""The scheduler's second loop: compare each scheduled sweep once it finishes (alerts and events,
service/lifecycle/alerts.py), and send what the webhook outbox holds (service/lifecycle/outbox.py),
every `NOTIFY_POLL_SECONDS` while there is nothing to do.

A thread beside the fire ticks, so a slow receiver (up to the webhook timeout per attempt) never
delays a fire time. Each comparison and each delivery is its own transaction: one that fails is
logged and tried again on a later pass, and never stops the others.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.clock import now
from service.db.models import Sweep
from service.db.session import session_scope
from service.lifecycle.alerts import due_for_evaluation, evaluate
from service.lifecycle.outbox import Claimed, claim_due, record
from service.settings import Settings
from service.webhooks.signing import headers
from service.webhooks.transport import post

log = logging.getLogger("clipsweep.notifier")

NOTIFY_POLL_SECONDS = 1.0
RETRY_FAILED_SECONDS = 300.0


class Notifier:
    def __init__(self, factory: sessionmaker[Session], settings: Settings,
                 clock: Callable[[], datetime] = now) -> None:
        self.factory, self.settings, self.clock = factory, settings, clock
        self._failed: dict[int, datetime] = {}  # sweep -> when comparing it last failed

    def evaluate_finished(self) -> int:
        """Compare the finished scheduled sweeps not compared yet; how many were."""
        moment = self.clock()
        # One that failed waits RETRY_FAILED_SECONDS, and never holds up the ones after it.
        self._failed = {k: v for k, v in self._failed.items() if (moment - v).total_seconds() < RETRY_FAILED_SECONDS}
        with session_scope(self.factory) as session:
            due = due_for_evaluation(session, exclude=list(self._failed))
        done = 0
        for sweep_id in due:
            try:
                with session_scope(self.factory) as session:
                    row = evaluate(session, session.get_one(Sweep, sweep_id), self.clock(),
                                   server_url=self.settings.resolved_server_url)
                    raised = (row.result or {}).get("alerts_raised", [])
                    log.info("sweep %s compared with %s: %s", sweep_id, row.baseline_sweep_id or "nothing",
                             f"alerts {raised}" if raised else (row.detail or "no new alert"))
                done += 1
            except IntegrityError:  # another scheduler compared it first
                log.info("sweep %s was compared by another scheduler", sweep_id)
            except Exception:  # a bug: log it, try again later, never stop the loop
                log.exception("comparing sweep %s failed; trying again in %.0f s", sweep_id, RETRY_FAILED_SECONDS)
                self._failed[sweep_id] = self.clock()
        return done

    def deliver_due(self, most: int = 20) -> int:
        """Send up to `most` deliveries due now, one claim at a time (a lease covers one attempt,
        so a slow receiver never lets another sender take the rest of a batch); how many were tried."""
        settings = self.settings
        tried = 0
        while tried < most:
            with session_scope(self.factory) as session:
                claimed = claim_due(session, self.clock(), lease_seconds=3 * settings.webhook_timeout_seconds + 5,
                                    limit=1)
            if not claimed:
                break
            self._send(claimed[0])
            tried += 1
        return tried

    def _send(self, item: Claimed) -> None:
        settings = self.settings
        timestamp = int(self.clock().timestamp())
        attempt = post(item.url, item.body, headers(item.secret, item.msg_id, timestamp, item.body),
                       allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout_seconds)
        with session_scope(self.factory) as session:
            delivery = record(session, item.delivery_id, attempt, self.clock(),
                              retry_seconds=settings.webhook_retry_schedule)
            # Never the URL (a chat URL is a credential) nor the body.
            log.info("webhook %s delivery %s (%s): %s in %.0f ms -> %s", item.webhook_id, item.delivery_id,
                     item.msg_id, attempt.status or attempt.error, attempt.latency_ms, delivery.state.value)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            busy = 0
            for step in (self.evaluate_finished, self.deliver_due):
                try:
                    busy += step()
                except Exception:  # the database is away: try again shortly
                    log.exception("notifier pass failed")
            if not busy:
                stop.wait(NOTIFY_POLL_SECONDS)
