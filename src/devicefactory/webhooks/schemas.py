"""JSON shapes of webhooks and their deliveries; the secret never leaves, only a mask."""

from __future__ import annotations

import json
from typing import Any

from devicefactory.accounts.schemas import iso
from devicefactory.tables.webhooks import Webhook, WebhookDelivery

SECRET_MASK = "********"


def webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": hook.event_names,
        "secret": SECRET_MASK,
        "created_by": hook.created_by,
        "created_at": iso(hook.created_at),
    }


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_code": delivery.response_code,
        "last_error": delivery.last_error,
        "created_at": iso(delivery.created_at),
        "last_attempt_at": iso(delivery.last_attempt_at),
        # None while pending: as soon as a sender is free.
        "next_attempt_at": iso(delivery.next_attempt_at),
        "payload": json.loads(delivery.body),
    }
