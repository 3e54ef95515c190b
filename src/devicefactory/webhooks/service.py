"""Register, list and delete an OEM's webhooks; list and redeliver their deliveries."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, Role, require
from devicefactory.errors import MissingAttributes, NotFound, ValidationFailed
from devicefactory.tables.webhooks import DeliveryStatus, Webhook, WebhookDelivery
from devicefactory.webhooks import queries
from devicefactory.webhooks.outbox import EVENTS

MAX_URL = 2048
SECRET_LENGTHS = (16, 255)
MAX_WEBHOOKS_PER_OEM = 20
MAX_PAGE = 500
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def _oem_of(actor: Actor) -> str:
    """Webhooks are an OEM::Admin's, for its own OEM (SPEC §13); every other role: AFS-403."""
    require(
        actor.role is Role.OEM_ADMIN and actor.oem_id is not None,
        "Forbidden: only OEM::Admin may manage webhooks",
    )
    assert actor.oem_id is not None
    return actor.oem_id


def create_webhook(session: Session, actor: Actor, *, body: Mapping[str, object], now: datetime) -> Webhook:
    oem_id = _oem_of(actor)
    missing = [name for name in ("url", "events", "secret") if body.get(name) in (None, "", [])]
    if missing:
        raise MissingAttributes(missing)
    failures = [
        *_url_failures(body["url"]),
        *_events_failures(body["events"]),
        *_secret_failures(body["secret"]),
    ]
    if not failures and queries.count_webhooks(session, oem_id) >= MAX_WEBHOOKS_PER_OEM:
        failures.append(f"an OEM may have at most {MAX_WEBHOOKS_PER_OEM} webhooks")
    if failures:
        raise ValidationFailed.of(failures)
    events = body["events"]
    assert isinstance(events, list)
    hook = Webhook(
        oem_id=oem_id,
        url=str(body["url"]),
        events=" ".join(event for event in EVENTS if event in events),
        secret=str(body["secret"]),
        created_by=actor.email,
        created_at=now,
    )
    session.add(hook)
    session.flush()
    return hook


def _url_failures(url: object) -> list[str]:
    problem = f"url must be an http or https URL of at most {MAX_URL} characters"
    if not isinstance(url, str) or len(url) > MAX_URL or _CONTROL.search(url):
        return [problem]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return [problem]
    return [] if parts.scheme in ("http", "https") and parts.hostname else [problem]


def _events_failures(events: object) -> list[str]:
    problem = "events must be a non-empty list of " + ", ".join(EVENTS)
    if not isinstance(events, list) or not events:
        return [problem]
    unknown = [str(event) for event in events if event not in EVENTS]
    return [f"events: {', '.join(unknown)[:200]} is not one of {', '.join(EVENTS)}"] if unknown else []


def _secret_failures(secret: object) -> list[str]:
    low, high = SECRET_LENGTHS
    if not isinstance(secret, str) or not low <= len(secret) <= high or not secret.isprintable():
        return [f"secret must be {low} to {high} printable characters"]
    return []


def list_webhooks(session: Session, actor: Actor) -> Sequence[Webhook]:
    return queries.webhooks_of(session, _oem_of(actor))


def get_webhook(session: Session, actor: Actor, webhook_id: str) -> Webhook:
    """The caller's OEM's webhook; another OEM's reads exactly as one that does not exist."""
    oem_id = _oem_of(actor)
    hook = queries.find_webhook(session, oem_id, int(webhook_id)) if _is_id(webhook_id) else None
    if hook is None:
        raise NotFound(f"Webhook {webhook_id} not found")
    return hook


def _is_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 9


def delete_webhook(session: Session, actor: Actor, webhook_id: str) -> None:
    """Delete the webhook and its deliveries (a send under way is not recorded)."""
    session.delete(get_webhook(session, actor, webhook_id))
    session.flush()


def list_deliveries(
    session: Session, actor: Actor, webhook_id: str, *, before: int | None, limit: int
) -> Sequence[WebhookDelivery]:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed.of([f"limit must be between 1 and {MAX_PAGE}"])
    hook = get_webhook(session, actor, webhook_id)
    return queries.deliveries_of(session, hook.id, before=before, limit=limit)


def redeliver(session: Session, actor: Actor, webhook_id: str, delivery_id: str) -> WebhookDelivery:
    """Queue a delivery again, due now, with a fresh retry series (its id stays)."""
    hook = get_webhook(session, actor, webhook_id)
    delivery = queries.find_delivery(session, hook.id, delivery_id)
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    return _queue_again(session, delivery)


def redeliver_by_id(session: Session, actor: Actor, delivery_id: str) -> WebhookDelivery:
    """``redeliver`` named by the delivery's id alone (it is unique: the
    X-DeviceFactory-Delivery header); another OEM's reads as one that does not exist."""
    delivery = queries.find_oems_delivery(session, _oem_of(actor), delivery_id)
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} not found")
    return _queue_again(session, delivery)


def _queue_again(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    delivery.status = DeliveryStatus.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = None
    delivery.first_attempt_at = None
    # A send under way loses its lease: its outcome is not recorded over this one.
    delivery.lease_owner = delivery.lease_until = None
    session.flush()
    return delivery
