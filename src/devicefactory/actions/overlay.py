"""A validate's memory of what its earlier batches would have changed (``factory_data.Overlay``).

Kept in the database beside the action's line outcomes, written in the same transaction,
so a validate resumed after a crash, by any runner, sees exactly what it saw before.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from devicefactory.actions import queries
from devicefactory.devices.records import DeviceRecord

# Fields held as datetimes: stored as ISO text.
_MOMENTS = frozenset({"dom_at", "manufactured_at", "provisioned_at", "verified_at"})


class StoredOverlay:
    def __init__(self, session: Session, action_id: int) -> None:
        self.session = session
        self.action_id = action_id

    def changes_of(self, dsns: Collection[str]) -> dict[str, dict[str, Any]]:
        rows = queries.overlay_changes(self.session, self.action_id, dsns)
        return {dsn: _decode(changes) for dsn, changes in rows}

    def holders_of(self, values: Mapping[str, set[str]]) -> dict[tuple[str, str], str]:
        return queries.overlay_holders(self.session, self.action_id, values)

    def remember(self, devices: Iterable[DeviceRecord]) -> None:
        """Keep what these devices would now hold, for the lines of later batches."""
        rows = [
            {
                "action_id": self.action_id,
                "dsn": device.dsn,
                "mac": device.mac,
                "hwsig": device.hwsig,
                "changes": _encode(device.changed),
            }
            for device in devices
        ]
        queries.replace_overlay(self.session, self.action_id, rows)


def _encode(changes: Mapping[str, Any]) -> str:
    return json.dumps(
        {name: value.isoformat() if isinstance(value, datetime) else value for name, value in changes.items()}
    )


def _decode(text: str) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(text)
    for name in _MOMENTS & values.keys():
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    return values
