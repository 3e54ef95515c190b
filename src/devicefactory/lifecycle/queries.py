"""SQL of the funnel: one GROUP BY over the devices behind the tenant wall, and one window
query for each group's oldest DSN still waiting for manufacture. Never a loop over devices."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from devicefactory.accounts.policy import Actor
from devicefactory.devices.queries import Reach, reachable
from devicefactory.tables.devices import Device, DeviceStatus


class GroupBy(enum.StrEnum):
    ACTION = "action"  # the reserve action: one reservation's cohort
    MODEL = "model"
    DAY = "day"  # the UTC day of the reserve


@dataclass(frozen=True)
class GroupCounts:
    key: str | int | None
    reserved: int
    manufactured: int
    provisioned: int
    verified: int
    retired: int
    waiting: int  # still reserved: neither manufactured, provisioned nor retired


@dataclass(frozen=True)
class Oldest:
    key: str | int | None
    dsn: str
    reserved_at: datetime


def _group_key(session: Session, group_by: GroupBy) -> ColumnElement[Any] | InstrumentedAttribute[Any]:
    if group_by is GroupBy.ACTION:
        return Device.reserve_action_id
    if group_by is GroupBy.MODEL:
        return Device.model
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Device.reserved_at), "YYYY-MM-DD")
    return func.substr(Device.reserved_at, 1, 10)  # SQLite keeps UTC as "YYYY-MM-DD HH:MM:SS"


def _where(actor: Actor, low: datetime | None, high: datetime | None) -> list[ColumnElement[bool]]:
    clauses = [reachable(actor, Reach.VIEW)]
    if low is not None:
        clauses.append(Device.reserved_at >= low)
    if high is not None:
        clauses.append(Device.reserved_at <= high)
    return clauses


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def group_counts(
    session: Session,
    actor: Actor,
    group_by: GroupBy,
    *,
    low: datetime | None,
    high: datetime | None,
    limit: int,
) -> list[GroupCounts]:
    """Up to ``limit`` groups: newest first by day and by action, by name for models."""
    key = _group_key(session, group_by).label("key")
    query = (
        select(
            key,
            func.count(),
            _count_if(Device.manufactured_at.is_not(None)),
            _count_if(Device.provisioned_at.is_not(None)),
            _count_if(Device.verified_at.is_not(None)),
            _count_if(Device.status == DeviceStatus.RETIRED),
            _count_if(Device.status == DeviceStatus.RESERVED),
        )
        .where(*_where(actor, low, high))
        .group_by(key)
        .order_by(key.asc() if group_by is GroupBy.MODEL else key.desc())
        .limit(limit)
    )
    return [GroupCounts(row[0], *(int(value) for value in row[1:])) for row in session.execute(query)]


def oldest_waiting(
    session: Session,
    actor: Actor,
    group_by: GroupBy,
    keys: Sequence[str | int | None],
    *,
    low: datetime | None,
    high: datetime | None,
) -> list[Oldest]:
    """Per group of ``keys``, the DSN reserved longest ago that is still only reserved."""
    if not keys:
        return []
    key = _group_key(session, group_by)
    rank = func.row_number().over(partition_by=key, order_by=(Device.reserved_at, Device.dsn))
    known = [k for k in keys if k is not None]
    in_keys = key.in_(known) if len(known) == len(keys) else (key.in_(known) | key.is_(None))
    ranked = (
        select(key.label("key"), Device.dsn, Device.reserved_at, rank.label("rank"))
        .where(*_where(actor, low, high), Device.status == DeviceStatus.RESERVED, and_(in_keys))
        .subquery()
    )
    query = select(ranked.c.key, ranked.c.dsn, ranked.c.reserved_at).where(ranked.c.rank == 1)
    return [Oldest(row[0], row[1], row[2]) for row in session.execute(query)]
