"""Query-string and form parsing for the dashboard pages (no service calls here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from devicefactory.devices.search import DATE_BOUNDS, EXACT_FIELDS, parse_moment
from devicefactory.errors import ValidationFailed
from devicefactory.tables.actions import ActionStatus, ActionType

ACTIONS_PAGE = 25
DEVICES_PAGES = (25, 50, 100, 200)
ACTION_TYPES = tuple(ActionType)
ACTION_STATUSES = tuple(ActionStatus)
# Every field of the DSN View's search form, in the form's order.
DEVICE_FIELDS = (
    *EXACT_FIELDS,
    "errors",
    "ads_connect_flag",
    *DATE_BOUNDS,
    "action_id",
)
DEVICE_PARAMS = (*DEVICE_FIELDS, "cursor", "limit")


@dataclass(frozen=True)
class ActionFilters:
    type: str | None = None
    status: str | None = None
    created_by: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    cursor: int | None = None
    raw: Mapping[str, str] | None = None

    @property
    def active(self) -> bool:
        return any((self.type, self.status, self.created_by, self.created_from, self.created_to))

    def value(self, name: str) -> str:
        return (self.raw or {}).get(name, "")

    def query(self, **changes: str | int | None) -> str:
        """The query string of these filters with ``changes`` (None drops a parameter)."""
        params: dict[str, str | int] = {
            name: value
            for name in ("type", "status", "created_by", "from", "to")
            if (value := self.value(name))
        }
        for name, change in changes.items():
            if change is None:
                params.pop(name, None)
            else:
                params[name] = change
        return urlencode(params)


def action_filters(params: Mapping[str, str]) -> ActionFilters:
    """The Factory Actions search; every bad value is listed in one AFS-600."""
    raw = {name: params.get(name, "").strip() for name in ("type", "status", "created_by", "from", "to")}
    failures = []
    moments: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        moments[name] = parse_moment(raw[name]) if raw[name] else None
        if raw[name] and moments[name] is None:
            failures.append(f"{name} {raw[name]} is not a date and time (YYYY-MM-DDTHH:MM)")
    cursor_text = params.get("cursor", "").strip()
    if cursor_text and not _digits(cursor_text):
        failures.append("cursor must be an action number")
    if failures:
        raise ValidationFailed.of(failures)
    return ActionFilters(
        type=raw["type"] or None,
        status=raw["status"] or None,
        created_by=raw["created_by"] or None,
        created_from=moments["from"],
        created_to=moments["to"],
        cursor=int(cursor_text) if cursor_text else None,
        raw=raw,
    )


def device_search(params: Mapping[str, str]) -> dict[str, str]:
    """The DSN View form as the parameters of devices.service.search_devices.

    Empty fields are dropped; every other value means what it means to the API (the
    dashboard's "reserved before 2026-12-03" is the API's ``reserved_before=2026-12-03``:
    before midnight, the 3rd left out).
    """
    search = {name: value for name in DEVICE_PARAMS if (value := params.get(name, "").strip())}
    search.setdefault("limit", str(DEVICES_PAGES[0]))
    return search


def datetime_local_value(value: str) -> str:
    """A date bound as the value of an ``<input type="datetime-local">`` (UTC, to the minute);
    a value that does not parse is left as typed, so the form shows what was wrong."""
    moment = parse_moment(value) if value.strip() else None
    if moment is None:
        return value
    return moment.strftime("%Y-%m-%dT%H:%M:%S" if moment.second else "%Y-%m-%dT%H:%M")


def device_query(params: Mapping[str, str], **changes: str | None) -> str:
    """The DSN View's query string with ``changes`` (None drops a parameter)."""
    kept: dict[str, str] = {name: params[name] for name in DEVICE_PARAMS if params.get(name, "").strip()}
    for name, change in changes.items():
        if change is None:
            kept.pop(name, None)
        else:
            kept[name] = change
    return urlencode(kept)


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) < 12


def positive_int(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if _digits(value) else None
