"""The outbox: an event becomes one delivery row per subscribed webhook, written in the
transaction of the change that caused it (so an event is sent if and only if its change
committed); and the pure rule of when a failed delivery is tried again."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from devicefactory.accounts.schemas import iso
from devicefactory.db import utcnow
from devicefactory.tables.actions import FactoryAction
from devicefactory.tables.webhooks import DeliveryStatus, WebhookDelivery
from devicefactory.webhooks import queries


class Event(enum.StrEnum):
    ACTION_FINISHED = "action.finished"
    DEVICES_RESERVED = "devices.reserved"
    DEVICE_FACTORY_RESET = "device.factory_reset"


EVENTS = tuple(Event)
OUTCOME_COUNTS = ("applied", "identical", "conflict", "invalid", "skipped")


def emit(
    session: Session,
    oem_id: str | None,
    event: str,
    payload: Mapping[str, object],
    *,
    now: datetime | None = None,
) -> int:
    """Queue ``event`` for every webhook of ``oem_id`` that wants it; returns how many.

    Nothing is sent here: the caller's transaction commits the rows, a sender sends them.
    The platform's own objects (``oem_id`` None) have no webhooks.
    """
    if oem_id is None:
        return 0
    wanted = [hook for hook in queries.webhooks_of(session, oem_id) if event in hook.event_names]
    if not wanted:
        return 0
    moment = now or utcnow()
    body = json.dumps(
        {"event": event, "time": iso(moment), "oem_id": oem_id, "data": dict(payload)},
        separators=(",", ":"),
    )
    session.add_all(
        WebhookDelivery(
            id=uuid.uuid4().hex,
            webhook_id=hook.id,
            event=event,
            body=body,
            status=DeliveryStatus.PENDING,
            created_at=moment,
            attempts=0,
        )
        for hook in wanted
    )
    return len(wanted)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: after the n-th failed attempt wait ``base * 2^(n-1)`` (at most
    ``cap``); give up once ``window`` has passed since the first attempt of the series,
    with one last attempt at the window's end."""

    base: timedelta
    cap: timedelta
    window: timedelta

    def delay(self, attempts: int) -> timedelta:
        # Capped before multiplying out: 2^n of a large n would overflow a timedelta.
        exponent = min(max(attempts - 1, 0), 40)
        delay: timedelta = self.base * (2**exponent)
        return min(self.cap, delay)

    def next_attempt(self, *, attempts: int, first_attempt: datetime, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failed attempts; None: give up (failed)."""
        end = first_attempt + self.window
        if now >= end:
            return None
        return min(now + self.delay(attempts), end)


def action_payload(action: FactoryAction) -> dict[str, object]:
    """``action.finished``: the action and its line counts."""
    return {
        "action_id": action.id,
        "type": action.type,
        "status": str(action.status),
        "count": action.count,
        "validate_only": action.validate_only,
        "lines_total": action.lines_total,
        **{outcome: getattr(action, outcome) for outcome in OUTCOME_COUNTS},
    }


def reserved_payload(action: FactoryAction, dsns: Sequence[str]) -> dict[str, object]:
    """``devices.reserved``: the contiguous range, its model and the reserve action."""
    return {
        "action_id": action.id,
        "model": action.model,
        "count": len(dsns),
        "first_dsn": dsns[0],
        "last_dsn": dsns[-1],
    }
