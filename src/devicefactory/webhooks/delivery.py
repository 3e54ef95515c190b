"""The sender: claims due deliveries from the outbox, POSTs them signed, records each attempt.

Any number of senders (threads, ``devicefactory worker`` processes on any hosts) share the
outbox. A sender holds a delivery with a lease taken by one conditional UPDATE, so no two
send one delivery at once; a sender that dies lets its lease run out and another one takes
the delivery over (a delivery is sent at least once: receivers dedupe on its id). Only the
oldest pending delivery of a webhook is ever due, so each receiver gets its events in order.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.config import Settings
from devicefactory.db import session_scope, utcnow
from devicefactory.processes import pause
from devicefactory.tables.webhooks import DeliveryStatus
from devicefactory.webhooks import queries
from devicefactory.webhooks.outbox import Backoff

log = logging.getLogger("devicefactory.webhooks")
SIGNATURE_HEADER = "X-DeviceFactory-Signature"
USER_AGENT = "DeviceFactory-Webhooks/1"
CANDIDATES = 20
SWEEP_SECONDS = 600


def signature(secret: str, body: bytes) -> str:
    """The ``X-DeviceFactory-Signature`` value: ``sha256=`` and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Claimed:
    seq: int
    id: str
    event: str
    body: bytes
    url: str
    secret: str
    attempts: int
    first_attempt_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """What one POST gave: a status code, or the error that kept it from getting one."""

    response_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300


class WebhookSender:
    def __init__(
        self, session_factory: sessionmaker[Session], settings: Settings, client: httpx.Client | None = None
    ) -> None:
        self.factory = session_factory
        self.poll_seconds = settings.webhook_poll_seconds
        self.backoff = Backoff(
            base=timedelta(seconds=settings.webhook_backoff_seconds),
            cap=timedelta(seconds=settings.webhook_max_backoff_seconds),
            window=timedelta(seconds=settings.webhook_retry_window_seconds),
        )
        # Longer than any send can take, so a live sender never loses its lease mid-send.
        self.lease = timedelta(seconds=max(60.0, 6 * settings.webhook_timeout_seconds))
        # Redirects are not followed: a signed body goes to the registered URL only.
        self.client = client or httpx.Client(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False, trust_env=False
        )
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.retention = timedelta(days=settings.webhook_retention_days)
        self._swept = time.monotonic()
        self._sweep_lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Send until ``stop`` is set; each sender thread of a process calls this."""
        while not stop.is_set():
            if not self.run_once():
                self.sweep()
                pause(stop, self.poll_seconds)

    def sweep(self, *, force: bool = False) -> int:
        """Every few minutes (one thread at a time): delete deliveries past their retention."""
        with self._sweep_lock:
            if not force and time.monotonic() - self._swept < SWEEP_SECONDS:
                return 0
            self._swept = time.monotonic()
        try:
            with session_scope(self.factory) as session:
                return queries.delete_finished(session, before=utcnow() - self.retention)
        except Exception:  # a database hiccup: next time
            log.exception("could not delete old webhook deliveries")
            return 0

    def run_once(self) -> bool:
        """Claim, send and record one delivery; False when none was due."""
        try:
            claimed = self._claim()
        except Exception:  # a database hiccup: try again at the next poll
            log.exception("could not claim a webhook delivery")
            return False
        if claimed is None:
            return False
        attempt = self._send(claimed)
        try:
            self._record(claimed, attempt)
        except Exception:  # the lease runs out and the delivery is sent again
            log.exception("could not record webhook delivery %s", claimed.id)
        return True

    def close(self) -> None:
        self.client.close()

    def _claim(self) -> Claimed | None:
        with session_scope(self.factory) as session:
            now = utcnow()
            for seq in queries.due_deliveries(session, now=now, limit=CANDIDATES):
                if not queries.take_lease(session, seq, owner=self.owner, now=now, until=now + self.lease):
                    continue  # another sender was quicker
                found = queries.sending(session, seq)
                if found is None:
                    continue
                delivery, hook = found
                return Claimed(
                    seq=seq,
                    id=delivery.id,
                    event=delivery.event,
                    body=delivery.body.encode(),
                    url=hook.url,
                    secret=hook.secret,
                    attempts=delivery.attempts,
                    first_attempt_at=delivery.first_attempt_at,
                )
            return None

    def _send(self, claimed: Claimed) -> Attempt:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-DeviceFactory-Event": claimed.event,
            "X-DeviceFactory-Delivery": claimed.id,
            SIGNATURE_HEADER: signature(claimed.secret, claimed.body),
        }
        try:
            # Streamed and never read: a receiver's answer body cannot fill our memory.
            with self.client.stream("POST", claimed.url, content=claimed.body, headers=headers) as response:
                code = response.status_code
        except httpx.TimeoutException:
            return Attempt(None, "timed out")
        except httpx.HTTPError as error:
            return Attempt(None, f"{type(error).__name__}: {error}"[:500])
        return Attempt(code, None if 200 <= code < 300 else f"HTTP {code}")

    def _record(self, claimed: Claimed, attempt: Attempt) -> None:
        now = utcnow()
        first = claimed.first_attempt_at or now
        attempts = claimed.attempts + 1
        values: dict[str, object] = {
            "attempts": attempts,
            "first_attempt_at": first,
            "last_attempt_at": now,
            "response_code": attempt.response_code,
            "last_error": attempt.error,
        }
        if attempt.delivered:
            values.update(status=DeliveryStatus.DELIVERED, next_attempt_at=None)
        else:
            retry = self.backoff.next_attempt(attempts=attempts, first_attempt=first, now=now)
            status = DeliveryStatus.PENDING if retry else DeliveryStatus.FAILED
            values.update(status=status, next_attempt_at=retry)
        with session_scope(self.factory) as session:
            recorded = queries.record_attempt(session, claimed.seq, owner=self.owner, values=values)
        log.info(
            "webhook delivery %s (%s) attempt %s: %s%s",
            claimed.id,
            claimed.event,
            attempts,
            attempt.error or attempt.response_code,
            "" if recorded else " (queued again meanwhile: not recorded)",
        )
