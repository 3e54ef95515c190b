"""ORM classes of webhooks: an OEM's subscriptions and the outbox of their deliveries."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from devicefactory.db import Base, UTCDateTime, utcnow


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for its first attempt, or for a retry
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # retried for the whole window in vain


class Webhook(Base):
    """An OEM's receiver: where to POST which events, and the secret the body is signed with."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    oem_id: Mapped[str] = mapped_column(ForeignKey("oems.oem_id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Space-separated event names.
    events: Mapped[str] = mapped_column(String(255))
    # Kept as given: signing needs the secret itself, not a hash of it (docs/webhooks.md).
    secret: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def event_names(self) -> list[str]:
        return self.events.split()


class WebhookDelivery(Base):
    """One event for one webhook (the outbox row), written in the transaction of the change
    that caused it; the sender (webhooks.delivery) sends it, retries it, records each try."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The sender's question: the oldest pending delivery of each webhook.
        Index("ix_webhook_deliveries_status_webhook", "status", "webhook_id", "seq"),
        Index("ix_webhook_deliveries_webhook_seq", "webhook_id", "seq"),
    )

    # Sends follow this order within a webhook.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The X-DeviceFactory-Delivery header: the same on every retry, so receivers can dedupe.
    id: Mapped[str] = mapped_column(String(32), unique=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # None: due now. Set from the sender's clock only, so a test's frozen clock never meets it.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The retry window (24 h) runs from the first attempt of a series (a redelivery starts one).
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    response_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(512), default=None)
    # The sender that holds the delivery while sending it, until lease_until.
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
