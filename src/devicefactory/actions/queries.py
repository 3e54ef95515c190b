"""SQL of factory actions; every query goes through ``visible_actions``."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Row, Table, delete, func, select
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.actions.outcomes import FAILED_OUTCOMES, LineOutcome
from devicefactory.db import insert_many
from devicefactory.devices.queries import Reach, reachable
from devicefactory.storage import StoredFile
from devicefactory.tables.actions import ActionLine, ActionStatus, FactoryAction, ValidateOverlay
from devicefactory.tables.devices import Device, Job
from devicefactory.tenancy import visible_actions

ACTION_LINES = cast(Table, ActionLine.__table__)


def find_action(session: Session, actor: Actor, action_id: int) -> FactoryAction | None:
    query = select(FactoryAction).where(FactoryAction.id == action_id, visible_actions(actor))
    return session.scalars(query).one_or_none()


def search_actions(
    session: Session,
    actor: Actor,
    *,
    type_: str | None = None,
    status: str | None = None,
    created_by: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> Sequence[FactoryAction]:
    """Newest first; ``before_id`` is the cursor of the next page."""
    query = select(FactoryAction).where(
        *action_filters(actor, type_, status, created_by, created_from, created_to)
    )
    if before_id:
        query = query.where(FactoryAction.id < before_id)
    return session.scalars(query.order_by(FactoryAction.id.desc()).limit(limit)).all()


def count_actions(session: Session, actor: Actor, *, bound: int, **filters: Any) -> int:
    """How many actions match (all pages), counting at most ``bound`` of them."""
    ids = select(FactoryAction.id).where(*action_filters(actor, **filters)).limit(bound)
    return session.scalar(select(func.count()).select_from(ids.subquery())) or 0


def action_filters(
    actor: Actor,
    type_: str | None = None,
    status: str | None = None,
    created_by: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> list[ColumnElement[bool]]:
    """The action search's conditions, the tenant wall first."""
    where = [visible_actions(actor)]
    if type_:
        where.append(FactoryAction.type == type_)
    if status:
        where.append(FactoryAction.status == status)
    if created_by:
        where.append(FactoryAction.created_by == created_by.strip().lower())
    if created_from:
        where.append(FactoryAction.created_at >= created_from)
    if created_to:
        where.append(FactoryAction.created_at <= created_to)
    return where


def reserve_rows(session: Session, action_id: int, after_dsn: str | None, limit: int) -> Sequence[Any]:
    """A page of the devices a reserve action made, with that action's job on each, in DSN order:
    (dsn, model, status, result, error_code)."""
    query = (
        select(Device.dsn, Device.model, Device.status, Job.result, Job.error_code)
        .join(Job, (Job.dsn == Device.dsn) & (Job.action_id == action_id))
        .where(Device.reserve_action_id == action_id)
        .order_by(Device.dsn)
        .limit(limit)
    )
    if after_dsn is not None:
        query = query.where(Device.dsn > after_dsn)
    return session.execute(query).all()


def reserve_keys(session: Session, action_id: int) -> Sequence[Row[str, str]]:
    query = (
        select(Device.dsn, Device.public_key)
        .where(Device.reserve_action_id == action_id)
        .order_by(Device.dsn)
    )
    return session.execute(query).all()


def action_lines(
    session: Session, action_id: int, *, failed_only: bool = False, limit: int
) -> Sequence[ActionLine]:
    """The first ``limit`` line outcomes of an upload (the dashboard's list)."""
    query = select(ActionLine).where(ActionLine.action_id == action_id)
    if failed_only:
        query = query.where(ActionLine.outcome.in_(FAILED_OUTCOMES))
    return session.scalars(query.order_by(ActionLine.line_no).limit(limit)).all()


def action_lines_page(
    session: Session, action_id: int, after_line: int, limit: int, *, failed_only: bool
) -> Sequence[Any]:
    """A page of line outcomes after ``after_line``: (line_no, dsn, outcome, model, device_status,
    error_code, message, raw)."""
    query = select(
        ActionLine.line_no,
        ActionLine.dsn,
        ActionLine.outcome,
        ActionLine.model,
        ActionLine.device_status,
        ActionLine.error_code,
        ActionLine.message,
        ActionLine.raw,
    ).where(ActionLine.action_id == action_id, ActionLine.line_no > after_line)
    if failed_only:
        query = query.where(ActionLine.outcome.in_(FAILED_OUTCOMES))
    return session.execute(query.order_by(ActionLine.line_no).limit(limit)).all()


def action_devices(
    session: Session, actor: Actor, action_id: int, *, limit: int, after: str | None
) -> Sequence[Device]:
    """The devices an action touched (reserved, or named by its lines) that ``actor``
    may see, in DSN order: an upload may name anybody's DSN."""
    touched = select(ActionLine.dsn).where(ActionLine.action_id == action_id, ActionLine.dsn.is_not(None))
    query = select(Device).where(
        (Device.reserve_action_id == action_id) | Device.dsn.in_(touched), reachable(actor, Reach.VIEW)
    )
    if after:
        query = query.where(Device.dsn > after)
    return session.scalars(query.order_by(Device.dsn).limit(limit)).all()


def claim_next_action(session: Session, *, stale_before: datetime) -> FactoryAction | None:
    """The oldest queued upload, or one whose runner stopped reporting (it died)."""
    waiting = (FactoryAction.status == ActionStatus.PENDING) | (
        (FactoryAction.status == ActionStatus.RUNNING) & (FactoryAction.heartbeat_at < stale_before)
    )
    query = (
        select(FactoryAction)
        .where(FactoryAction.upload_type.is_not(None), waiting)
        .order_by(FactoryAction.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query.limit(1)).first()


def lock_action(session: Session, action_id: int) -> FactoryAction | None:
    return session.scalars(
        select(FactoryAction).where(FactoryAction.id == action_id).with_for_update()
    ).first()


def insert_action_lines(session: Session, action_id: int, outcomes: Sequence[LineOutcome]) -> None:
    if outcomes:
        insert_many(
            session.connection(),
            ACTION_LINES,
            [
                {
                    "action_id": action_id,
                    "line_no": o.line_no,
                    "dsn": o.dsn,
                    "outcome": o.outcome,
                    "model": o.model,
                    "device_status": o.device_status,
                    "error_code": o.error_code,
                    "message": o.message,
                    "changes": o.changes,
                    "raw": o.raw,
                }
                for o in outcomes
            ],
        )


# --- a validate's overlay (actions.overlay) ---------------------------------------------------

_CHUNK = 900  # under every database's bound-parameter limit


def overlay_changes(session: Session, action_id: int, dsns: Collection[str]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    ordered = sorted(dsns)
    for start in range(0, len(ordered), _CHUNK):
        query = select(ValidateOverlay.dsn, ValidateOverlay.changes).where(
            ValidateOverlay.action_id == action_id, ValidateOverlay.dsn.in_(ordered[start : start + _CHUNK])
        )
        found.extend((row[0], row[1]) for row in session.execute(query))
    return found


def overlay_holders(
    session: Session, action_id: int, values: Mapping[str, set[str]]
) -> dict[tuple[str, str], str]:
    holders: dict[tuple[str, str], str] = {}
    for name, wanted in values.items():
        column = getattr(ValidateOverlay, name)
        ordered = sorted(wanted)
        for start in range(0, len(ordered), _CHUNK):
            query = select(column, ValidateOverlay.dsn).where(
                ValidateOverlay.action_id == action_id, column.in_(ordered[start : start + _CHUNK])
            )
            holders.update(((name, value), dsn) for value, dsn in session.execute(query))
    return holders


def replace_overlay(session: Session, action_id: int, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    dsns = [row["dsn"] for row in rows]
    for start in range(0, len(dsns), _CHUNK):
        session.execute(
            delete(ValidateOverlay).where(
                ValidateOverlay.action_id == action_id, ValidateOverlay.dsn.in_(dsns[start : start + _CHUNK])
            )
        )
    insert_many(session.connection(), cast(Table, ValidateOverlay.__table__), rows)


def delete_overlay(session: Session, action_id: int) -> None:
    session.execute(delete(ValidateOverlay).where(ValidateOverlay.action_id == action_id))


def expired_uploads(session: Session, *, finished_before: datetime) -> list[str]:
    """The stored files of actions that finished before ``finished_before``."""
    query = select(FactoryAction.file_id).where(
        FactoryAction.file_id.is_not(None), FactoryAction.finished_at < finished_before
    )
    return [file_id for file_id in session.scalars(query) if file_id]


def unclaimed_files(session: Session, *, created_before: datetime) -> list[str]:
    """Complete stored files that no action names (the request that stored one died)."""
    named = select(FactoryAction.file_id).where(FactoryAction.file_id.is_not(None))
    query = select(StoredFile.id).where(StoredFile.created_at < created_before, StoredFile.id.not_in(named))
    return list(session.scalars(query))
