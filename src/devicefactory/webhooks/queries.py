"""Every SQL statement of webhooks. An OEM's webhooks are reached through ``owned_by``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from devicefactory.tables.webhooks import DeliveryStatus, Webhook, WebhookDelivery


def owned_by(oem_id: str) -> ColumnElement[bool]:
    """The tenant wall: an OEM's own webhooks; any other id reads as one that does not exist."""
    return Webhook.oem_id == oem_id


def webhooks_of(session: Session, oem_id: str) -> Sequence[Webhook]:
    return session.scalars(select(Webhook).where(owned_by(oem_id)).order_by(Webhook.id)).all()


def count_webhooks(session: Session, oem_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Webhook).where(owned_by(oem_id))) or 0


def find_webhook(session: Session, oem_id: str, webhook_id: int) -> Webhook | None:
    return session.scalar(select(Webhook).where(owned_by(oem_id), Webhook.id == webhook_id))


def deliveries_of(
    session: Session, webhook_id: int, *, before: int | None, limit: int
) -> Sequence[WebhookDelivery]:
    """Newest first; ``before`` is the ``seq`` the previous page ended at."""
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if before is not None:
        query = query.where(WebhookDelivery.seq < before)
    return session.scalars(query.order_by(WebhookDelivery.seq.desc()).limit(limit)).all()


def find_delivery(session: Session, webhook_id: int, delivery_id: str) -> WebhookDelivery | None:
    return session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.id == delivery_id
        )
    )


def find_oems_delivery(session: Session, oem_id: str, delivery_id: str) -> WebhookDelivery | None:
    """A delivery of one of ``oem_id``'s webhooks, by its id."""
    return session.scalar(
        select(WebhookDelivery)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(Webhook.oem_id == oem_id, WebhookDelivery.id == delivery_id)
    )


# --- the sender -------------------------------------------------------------------------


def due_deliveries(session: Session, *, now: datetime, limit: int) -> Sequence[int]:
    """The ``seq`` of each webhook's oldest pending delivery, when it is due and not held by a
    sender: a webhook's later deliveries wait behind it, so each receiver gets them in order."""
    earlier = aliased(WebhookDelivery)
    head = (
        ~select(earlier.seq)
        .where(
            earlier.webhook_id == WebhookDelivery.webhook_id,
            earlier.status == DeliveryStatus.PENDING,
            earlier.seq < WebhookDelivery.seq,
        )
        .exists()
    )
    return session.scalars(
        select(WebhookDelivery.seq)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, head, _due(now), _free(now))
        .order_by(WebhookDelivery.seq)
        .limit(limit)
    ).all()


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(WebhookDelivery.next_attempt_at.is_(None), WebhookDelivery.next_attempt_at <= now)


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)


def take_lease(session: Session, seq: int, *, owner: str, now: datetime, until: datetime) -> bool:
    """Hold delivery ``seq`` for ``owner``; False when another sender holds it or it is no
    longer pending. One conditional UPDATE: of two senders, exactly one changes the row."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.seq == seq,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            _due(now),
            _free(now),
        )
        .values(lease_owner=owner, lease_until=until)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


def record_attempt(session: Session, seq: int, *, owner: str, values: dict[str, Any]) -> bool:
    """Write an attempt's outcome and let the lease go, if ``owner`` still holds it (a
    redelivery in the meantime took it back: that attempt is then not recorded)."""
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.seq == seq, WebhookDelivery.lease_owner == owner)
        .values(**values, lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return _changed(result) == 1


def delete_finished(session: Session, *, before: datetime) -> int:
    """Delete delivered and failed deliveries whose last attempt was before ``before``."""
    result = session.execute(
        delete(WebhookDelivery)
        .where(
            WebhookDelivery.status.in_((DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)),
            WebhookDelivery.last_attempt_at < before,
        )
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def sending(session: Session, seq: int) -> tuple[WebhookDelivery, Webhook] | None:
    row = session.execute(
        select(WebhookDelivery, Webhook)
        .join(Webhook, and_(Webhook.id == WebhookDelivery.webhook_id))
        .where(WebhookDelivery.seq == seq)
    ).first()
    return (row[0], row[1]) if row else None


def _changed(result: Any) -> int:
    count: int = result.rowcount
    return count
