"""Anomalies (SPEC §13): shared MACs and hwsigs, conflicting manufacture claims, failed verifies.

Each list is a page of refusals (``refusals.py``) with what it says about the devices: the
values a line claimed, the device that holds them, the changes a conflict named. A device
that holds a value is named only when the caller may see it; Ayla::Admin sees all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, Role, require
from devicefactory.devices import fields as F
from devicefactory.devices.queries import Reach, reachable
from devicefactory.errors import ValidationFailed
from devicefactory.reports import evidence as E
from devicefactory.reports.refusals import (
    CONFLICT_JOBS,
    CONFLICT_LINES,
    TAKEN_JOBS,
    TAKEN_LINES,
    VERIFY_JOBS,
    Refusal,
    refusal_page,
)
from devicefactory.reports.schemas import (
    AnomalyReport,
    Change,
    ConflictingClaim,
    ConflictingClaims,
    FailedVerifies,
    FailedVerify,
    Identifier,
    SharedIdentifier,
    SharedIdentifiers,
)
from devicefactory.tables.devices import Device

LISTS = ("identifiers", "conflicts", "verifies")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
FORBIDDEN = "Forbidden: only admins and manufacturing roles read the anomalies report"


def may_read_anomalies(actor: Actor) -> bool:
    """Admins, and the roles that manufacture or provision (docs/anomalies.md)."""
    return (
        actor.is_platform_admin
        or actor.role is Role.OEM_ADMIN
        or actor.may_manufacture
        or actor.may_provision
    )


# --- the three lists --------------------------------------------------------------------


def shared_identifiers(
    session: Session, actor: Actor, *, cursor: str | None, limit: int
) -> SharedIdentifiers:
    """MACs and hwsigs claimed by a DSN while another device held them."""
    page, next_cursor = refusal_page(
        session,
        actor,
        name="identifiers_cursor",
        cursor=cursor,
        limit=limit,
        lines=TAKEN_LINES(),
        jobs=TAKEN_JOBS(),
    )
    claims = [(refusal, _claimed(refusal)) for refusal in page]
    wanted: dict[str, set[str]] = {}
    for _, identifiers in claims:
        for field, value in identifiers:
            if value is not None and E.is_unique_field(field):
                wanted.setdefault(field, set()).add(value)
    holders = _holders(session, actor, wanted)
    items = [_shared(refusal, identifiers, holders) for refusal, identifiers in claims]
    return SharedIdentifiers(items=items, next_cursor=next_cursor)


def _claimed(refusal: Refusal) -> list[tuple[str, str | None]]:
    """(field, value) of each value the refusal says was taken: from an upload's line, or
    from what a refused call claimed (None for a call recorded before claims were kept)."""
    fields = E.taken_fields(refusal.evidence.message)
    if refusal.line is not None and refusal.action is not None:
        action = refusal.action
        values = E.line_fields(refusal.line.raw, action.file_format, action.file_header)
    elif refusal.job is not None and refusal.job.claimed:
        values = E.call_claims(refusal.job.claimed)
    else:
        return [(field, None) for field in fields]
    return [(field, E.claimed_value(field, values) if E.is_unique_field(field) else None) for field in fields]


def _shared(
    refusal: Refusal, identifiers: list[tuple[str, str | None]], holders: Mapping[tuple[str, str], str]
) -> SharedIdentifier:
    shown = [
        Identifier(
            field=cast(Any, field),
            value=value,
            held_by=holders.get((field, value)) if value is not None else None,
        )
        for field, value in identifiers
    ]
    dsns = [refusal.dsn, *(i.held_by for i in shown if i.held_by and i.held_by != refusal.dsn)]
    return SharedIdentifier(
        dsn=refusal.dsn, identifiers=shown, dsns=list(dict.fromkeys(dsns)), evidence=refusal.evidence
    )


def _holders(session: Session, actor: Actor, values: Mapping[str, set[str]]) -> dict[tuple[str, str], str]:
    """Which visible device holds each value (``mac``/``hwsig`` are unique, and indexed)."""
    holders: dict[tuple[str, str], str] = {}
    for name, wanted in values.items():
        column = getattr(Device, name)
        query = select(column, Device.dsn).where(column.in_(sorted(wanted)), reachable(actor, Reach.VIEW))
        holders.update(((name, value), dsn) for value, dsn in session.execute(query))
    return holders


def conflicting_claims(
    session: Session, actor: Actor, *, cursor: str | None, limit: int
) -> ConflictingClaims:
    """DSNs claimed again with other factory data than they hold."""
    page, next_cursor = refusal_page(
        session,
        actor,
        name="conflicts_cursor",
        cursor=cursor,
        limit=limit,
        lines=CONFLICT_LINES(),
        jobs=CONFLICT_JOBS(),
    )
    query = select(Device).where(Device.dsn.in_({r.dsn for r in page}), reachable(actor, Reach.VIEW))
    devices = {device.dsn: device for device in session.scalars(query)} if page else {}
    items = [_conflict(refusal, devices.get(refusal.dsn)) for refusal in page]
    return ConflictingClaims(items=items, next_cursor=next_cursor)


def _conflict(refusal: Refusal, device: Device | None) -> ConflictingClaim:
    if refusal.action is not None:
        operation = refusal.action.upload_type or "manufacture"
    else:
        operation = refusal.job.operation if refusal.job else "manufacture"
    current = None
    if device is not None:
        current = {
            name: E.shown(name, F.display(name, getattr(device, name)) or None)
            for name in F.MANUFACTURE_FIELDS
        }
    return ConflictingClaim(
        dsn=refusal.dsn,
        operation=cast(Any, operation),
        changes=_changes(refusal),
        current=current,
        evidence=refusal.evidence,
    )


def _changes(refusal: Refusal) -> list[Change]:
    line, action = refusal.line, refusal.action
    if line is not None and line.outcome == "conflict":
        return [
            Change(field=name, original=E.shown(name, old), claimed=E.shown(name, new))
            for name, old, new in E.changes_of(line.changes)
        ]
    claimed: Mapping[str, str] = {}
    if line is not None and action is not None:
        claimed = E.line_fields(line.raw, action.file_format, action.file_header)
    return [
        Change(
            field=name,
            original=E.shown(name, original),
            claimed=E.shown(name, _cleaned(name, claimed.get(name))),
        )
        for name, original in E.mismatches(refusal.evidence.message)
    ]


def _cleaned(name: str, value: str | None) -> str | None:
    if value is None or not E.is_unique_field(name):
        return value or None
    return F.clean_unique(name, value) or value


def failed_verifies(session: Session, actor: Actor, *, cursor: str | None, limit: int) -> FailedVerifies:
    """Verifies that were refused: tokens not made with the device's key, replays, ..."""
    page, next_cursor = refusal_page(
        session, actor, name="verifies_cursor", cursor=cursor, limit=limit, lines=None, jobs=VERIFY_JOBS()
    )
    items = [
        FailedVerify(
            dsn=refusal.dsn,
            kind=cast(Any, E.verify_kind(refusal.evidence.message)),
            job_id=refusal.evidence.job_ids[0],
            at=refusal.evidence.at,
            created_by=refusal.evidence.created_by,
            oem_id=refusal.evidence.oem_id,
            error_code=refusal.evidence.error_code,
            message=refusal.evidence.message,
        )
        for refusal in page
    ]
    return FailedVerifies(items=items, next_cursor=next_cursor)


# --- the report ---------------------------------------------------------------------------


def anomaly_report(
    session: Session,
    actor: Actor,
    *,
    limit: str | None = None,
    only: str | None = None,
    cursors: Mapping[str, str | None] | None = None,
) -> AnomalyReport:
    """The three lists (or ``only`` one), each a page of ``limit`` from its own cursor."""
    require(may_read_anomalies(actor), FORBIDDEN)
    size = parse_limit(limit)
    if only is not None and only not in LISTS:
        raise ValidationFailed.of([f"only must be one of {', '.join(LISTS)}"])
    cursors = cursors or {}

    def wanted(name: str) -> bool:
        return only is None or only == name

    return AnomalyReport(
        shared_identifiers=shared_identifiers(session, actor, cursor=cursors.get("identifiers"), limit=size)
        if wanted("identifiers")
        else None,
        conflicting_claims=conflicting_claims(session, actor, cursor=cursors.get("conflicts"), limit=size)
        if wanted("conflicts")
        else None,
        failed_verifies=failed_verifies(session, actor, cursor=cursors.get("verifies"), limit=size)
        if wanted("verifies")
        else None,
    )


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ValidationFailed.of([f"limit must be an integer between 1 and {MAX_LIMIT}"])
    return int(value)
