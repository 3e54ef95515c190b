"""The audit log's SQL: entries behind the tenant wall, newest first or in chain order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from devicefactory.tables.audit import AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    """Which entries: ``oem_id`` None means every OEM's (Ayla::Admin)."""

    all_oems: bool
    oem_id: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    user: str | None = None
    what: str | None = None
    dsn: str | None = None


def _filtered(wanted: AuditFilter) -> Select[AuditEntry]:
    query = select(AuditEntry)
    if not wanted.all_oems:
        # The tenant wall: an OEM's admin sees what its OEM's users did, nothing else.
        query = query.where(AuditEntry.oem_id == wanted.oem_id, AuditEntry.oem_id.is_not(None))
    if wanted.start is not None:
        query = query.where(AuditEntry.at >= wanted.start)
    if wanted.end is not None:
        query = query.where(AuditEntry.at < wanted.end)
    if wanted.user:
        query = query.where(func.lower(AuditEntry.user_email) == wanted.user.lower())
    if wanted.what:
        if wanted.what.endswith("*"):
            prefix = wanted.what[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEntry.what.like(prefix + "%", escape="\\"))
        else:
            query = query.where(AuditEntry.what == wanted.what)
    if wanted.dsn:
        query = query.where(AuditEntry.dsn == wanted.dsn.upper())
    return query


def newest_first(
    session: Session, wanted: AuditFilter, *, before_id: int | None, limit: int
) -> Sequence[AuditEntry]:
    """A page of entries, newest first, before ``before_id`` (the previous page's last)."""
    query = _filtered(wanted)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    return session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)).all()


def in_chain_order(
    session: Session, wanted: AuditFilter, *, after_id: int | None, limit: int
) -> Sequence[AuditEntry]:
    """A page of entries, oldest first, after ``after_id``: the CSV export."""
    query = _filtered(wanted)
    if after_id is not None:
        query = query.where(AuditEntry.id > after_id)
    return session.scalars(query.order_by(AuditEntry.id).limit(limit)).all()
