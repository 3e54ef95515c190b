"""The JSON and CSV of an audit entry."""

from __future__ import annotations

import json
from typing import Any

from devicefactory.audit_chain import iso_utc
from devicefactory.tables.audit import AuditEntry

CSV_HEADER = (
    "id",
    "at",
    "user_id",
    "user_email",
    "oem_id",
    "client",
    "request_id",
    "what",
    "dsn",
    "action_id",
    "object",
    "previous_hash",
    "entry_hash",
)


def _object(entry: AuditEntry) -> Any:
    try:
        return json.loads(entry.object)
    except ValueError:
        return entry.object


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso_utc(entry.at),
        "user_id": entry.user_id,
        "user_email": entry.user_email,
        "oem_id": entry.oem_id,
        "client": entry.client,
        "request_id": entry.request_id,
        "what": entry.what,
        "dsn": entry.dsn,
        "action_id": entry.action_id,
        "object": _object(entry),
        "previous_hash": entry.previous_hash,
        "entry_hash": entry.entry_hash,
    }


def csv_row(entry: AuditEntry) -> tuple[object, ...]:
    """One row: the stored fields as they are (``object`` as its canonical JSON), so that an
    export can be checked against the chain."""
    return (
        entry.id,
        iso_utc(entry.at),
        entry.user_id,
        entry.user_email,
        entry.oem_id,
        entry.client,
        entry.request_id,
        entry.what,
        entry.dsn,
        entry.action_id,
        entry.object,
        entry.previous_hash,
        entry.entry_hash,
    )
