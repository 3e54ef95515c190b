"""ORM classes of the audit log (SPEC §13): a hash chain of every change and download."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from devicefactory.db import Base, UTCDateTime


class AuditEntry(Base):
    """One change or download. ``entry_hash = SHA-256(previous entry's hash + canonical JSON
    of this entry's fields)``; the first entry's previous hash is 64 zeros."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, default=None)
    user_email: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    oem_id: Mapped[str | None] = mapped_column(String(8), default=None, index=True)
    client: Mapped[str | None] = mapped_column(String(64), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    what: Mapped[str] = mapped_column(String(64), index=True)
    dsn: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    action_id: Mapped[int | None] = mapped_column(Integer, default=None)
    object: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON: what else names the object
    previous_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last link, one row: appending an entry locks it, so entries form one line
    even with many writers; ``verify`` also compares it with the last entry (a removed tail)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    last_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
