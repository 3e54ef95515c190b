"""Factory actions: read them, search them, and fetch their files (tenant-scoped)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from devicefactory import storage
from devicefactory.accounts import queries as accounts_queries
from devicefactory.accounts.policy import Actor, require
from devicefactory.actions import files, queries
from devicefactory.devices.search import parse_moment
from devicefactory.errors import NotFound, ValidationFailed
from devicefactory.tables.actions import ActionLine, ActionStatus, ActionType, FactoryAction
from devicefactory.tables.devices import Device

MAX_PAGE = 500
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class ActionFile:
    """A file to send: its name, its type, and its content in chunks (read as they are sent)."""

    filename: str
    media_type: str
    chunks: Iterator[bytes]


def get_action(session: Session, actor: Actor, action_id: int) -> FactoryAction:
    # Ids beyond the column's range cannot exist: answer like any unknown id.
    action = queries.find_action(session, actor, action_id) if 0 < action_id <= MAX_ID else None
    if action is None:
        raise NotFound(f"Factory action {action_id} not found")
    return action


def action_devices(
    session: Session, actor: Actor, action_id: int, *, limit: int = 100, after: str | None = None
) -> tuple[FactoryAction, Sequence[Device]]:
    action = get_action(session, actor, action_id)
    return action, queries.action_devices(session, actor, action.id, limit=_page(limit), after=after)


def search_actions(
    session: Session,
    actor: Actor,
    *,
    type_: str | None,
    status: str | None,
    created_by: str | None,
    created_from: str | datetime | None,
    created_to: str | datetime | None,
    cursor: int | None,
    limit: int,
) -> Sequence[FactoryAction]:
    if type_ and type_ not in set(ActionType):
        raise ValidationFailed.of([f"type must be one of {', '.join(ActionType)}"])
    if status and status not in set(ActionStatus):
        raise ValidationFailed.of([f"status must be one of {', '.join(ActionStatus)}"])
    bounds = {"from": _moment("from", created_from), "to": _moment("to", created_to)}
    return queries.search_actions(
        session,
        actor,
        type_=type_,
        status=status,
        created_by=created_by,
        created_from=bounds["from"],
        created_to=bounds["to"],
        before_id=max(1, min(cursor, MAX_ID)) if cursor is not None else None,
        limit=_page(limit),
    )


FINAL_STATUSES = (ActionStatus.SUCCESS, ActionStatus.FAILURE)


def offered_files(actor: Actor, action: FactoryAction) -> list[tuple[str, str]]:
    """(kind, label) of the files ``action_file`` would give ``actor`` for this action now."""
    files_ = [("csv", "CSV"), ("log", "LOG")]
    if action.type == ActionType.RESERVE:
        files_ += [("xml", "XML bundle")] if action.oem_id else []
    elif action.status not in FINAL_STATUSES:
        files_ = []
    elif action.conflict + action.invalid:
        files_ += [("failed", "Failed lines")]
    return [(kind, label) for kind, label in files_ if actor.may_download(kind)]


def count_actions(
    session: Session,
    actor: Actor,
    *,
    type_: str | None,
    status: str | None,
    created_by: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    bound: int,
) -> int:
    """How many actions the search of ``search_actions`` matches, counting at most ``bound``."""
    return queries.count_actions(
        session,
        actor,
        bound=bound,
        type_=type_,
        status=status,
        created_by=created_by,
        created_from=created_from,
        created_to=created_to,
    )


def action_lines(
    session: Session, actor: Actor, action_id: int, *, failed_only: bool = False, limit: int = MAX_PAGE
) -> tuple[FactoryAction, Sequence[ActionLine]]:
    """An upload's per-line outcomes (the first ``limit``), tenant-checked."""
    action = get_action(session, actor, action_id)
    return action, queries.action_lines(session, action.id, failed_only=failed_only, limit=limit)


def _moment(name: str, value: str | datetime | None) -> datetime | None:
    """A bound given as ISO text (the API) or a datetime (the dashboard)."""
    if value is None or isinstance(value, datetime):
        return value
    moment = parse_moment(value) if value.strip() else None
    if value.strip() and moment is None:
        raise ValidationFailed.of([f"{name} {value} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"])
    return moment


def action_file(
    session: Session, actor: Actor, action_id: int, kind: str, *, pages: sessionmaker[Session]
) -> ActionFile:
    """``csv``, ``log``, ``xml`` (reserve bundle) or ``failed`` (failed upload lines).

    The tenant check reads through ``session``; the file's rows are read later, as it is
    sent, a page at a time through ``pages`` (files.py).
    """
    action = get_action(session, actor, action_id)
    # A visible action's file the role may not have: 403, not 404 (no existence to hide).
    require(actor.may_download(kind), f"Forbidden: {actor.role} may not download {kind} files")
    stem = f"action-{action.id}-{action.type}"
    if kind == "csv":
        return ActionFile(f"{stem}.csv", "text/csv", files.csv_file(pages, action))
    if kind == "log":
        return ActionFile(f"{stem}.log", "text/plain", files.log_file(pages, action))
    if kind == "xml" and action.type == ActionType.RESERVE:
        bundle = _bundle(session, action)
        return ActionFile(f"{stem}-dsns.zip.p7m", "application/pkcs7-mime", iter([bundle]))
    if kind == "failed" and action.type != ActionType.RESERVE:
        suffix = "csv" if action.file_format == "csv" else "log"
        return ActionFile(f"{stem}-failed.{suffix}", "text/plain", files.failed_lines_file(pages, action))
    raise NotFound(f"Factory action {action_id} has no {kind} file")


def _bundle(session: Session, action: FactoryAction) -> bytes:
    oem = accounts_queries.get_oem(session, action.oem_id) if action.oem_id else None
    if oem is None or not oem.factory_certificate:
        # Never an unencrypted bundle: platform reservations have no certificate to seal to.
        raise NotFound(f"Factory action {action.id} has no bundle: its OEM has no factory certificate")
    return files.reserve_bundle(session, action, oem.factory_certificate)


def _page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed.of([f"limit must be between 1 and {MAX_PAGE}"])
    return limit


def sweep_stored_files(session: Session, *, now: datetime, retention: timedelta) -> int:
    """Delete uploads past their retention (their outcomes stay), and files no action
    took; returns how many files went."""
    gone = queries.expired_uploads(session, finished_before=now - retention)
    gone += queries.unclaimed_files(session, created_before=now - storage.ABANDONED_AFTER)
    gone += storage.unfinished_files(session, older_than=now - storage.ABANDONED_AFTER)
    storage.delete_files(session, gone)
    return len(gone)
