"""ORM classes of factory actions: the action itself and one row per upload line."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from devicefactory.db import Base, UTCDateTime, utcnow


class ActionType(enum.StrEnum):
    RESERVE = "reserve"
    MANUFACTURE = "manufacture"
    PROVISION = "provision"
    VALIDATE = "validate"
    RETIRE = "retire"


class ActionStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"


class FactoryAction(Base):
    __tablename__ = "factory_actions"
    __table_args__ = (
        Index("ix_factory_actions_oem_created", "oem_id", "created_at"),
        Index("ix_factory_actions_status", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer, default=0)
    # The OEM whose action this is (the tenant wall); None for the platform's own.
    oem_id: Mapped[str | None] = mapped_column(ForeignKey("oems.oem_id"), default=None)
    created_by: Mapped[str] = mapped_column(String(255))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    model: Mapped[str | None] = mapped_column(String(64), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    # Uploads: what to do, where the file is, and how far the runner got.
    upload_type: Mapped[str | None] = mapped_column(String(16), default=None)
    validate_only: Mapped[bool] = mapped_column(Boolean, default=False)
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    # The upload, kept in the database (storage.py) until its retention ends.
    file_id: Mapped[str | None] = mapped_column(
        ForeignKey("stored_files.id", ondelete="SET NULL"), index=True, default=None
    )
    file_format: Mapped[str | None] = mapped_column(String(8), default=None)
    file_header: Mapped[str | None] = mapped_column(Text, default=None)
    oem_host_version: Mapped[str | None] = mapped_column(String(255), default=None)
    lines_total: Mapped[int] = mapped_column(Integer, default=0)
    lines_done: Mapped[int] = mapped_column(Integer, default=0)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    identical: Mapped[int] = mapped_column(Integer, default=0)
    conflict: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class ActionLine(Base):
    """The outcome of one line of an upload (applied, identical, conflict, invalid, skipped)."""

    __tablename__ = "action_lines"
    __table_args__ = (
        UniqueConstraint("action_id", "line_no"),
        # The action detail lists the devices an upload touched, by DSN.
        Index("ix_action_lines_action_dsn", "action_id", "dsn"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("factory_actions.id", ondelete="CASCADE"))
    line_no: Mapped[int] = mapped_column(Integer)
    dsn: Mapped[str | None] = mapped_column(
        String(64).with_variant(String(64, collation="C"), "postgresql"), index=True, default=None
    )
    outcome: Mapped[str] = mapped_column(String(16))
    # The device's model and status after the line (blank when the caller cannot see it).
    model: Mapped[str | None] = mapped_column(String(64), default=None)
    device_status: Mapped[str | None] = mapped_column(String(16), default=None)
    error_code: Mapped[str | None] = mapped_column(String(16), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    changes: Mapped[str | None] = mapped_column(Text, default=None)
    raw: Mapped[str] = mapped_column(Text, default="")


class ValidateOverlay(Base):
    """What a validate's earlier lines would have changed on one device (see Overlay).

    Written with each batch's outcomes, so a validate resumed by another runner still sees
    them; deleted when the validate ends.
    """

    __tablename__ = "validate_overlay"
    __table_args__ = (
        Index("ix_validate_overlay_action_mac", "action_id", "mac"),
        Index("ix_validate_overlay_action_hwsig", "action_id", "hwsig"),
    )

    action_id: Mapped[int] = mapped_column(
        ForeignKey("factory_actions.id", ondelete="CASCADE"), primary_key=True
    )
    dsn: Mapped[str] = mapped_column(
        String(32).with_variant(String(32, collation="C"), "postgresql"), primary_key=True
    )
    mac: Mapped[str | None] = mapped_column(String(12), default=None)
    hwsig: Mapped[str | None] = mapped_column(String(128), default=None)
    changes: Mapped[str] = mapped_column(Text)
