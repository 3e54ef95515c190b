"""The DSN View search: its parameters, in our form and in the Ayla ``filter[...]`` form (§6)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from devicefactory.device_fields import BY_NAME, FIELDS, SECRET_FIELDS, Kind, Search
from devicefactory.devices.fields import normalize_mac, parse_flag
from devicefactory.errors import Forbidden, ValidationFailed

# The device's own columns, then the fields of the table by their search form.
EXACT_FIELDS = (
    "dsn",
    "status",
    "model",
    *(f.name for f in FIELDS if f.search in (Search.EXACT, Search.WILDCARD)),
)
WILDCARD_FIELDS = ("dsn", *(f.name for f in FIELDS if f.search is Search.WILDCARD))
FLAG_FIELDS = tuple(f.name for f in FIELDS if f.search is Search.FLAG)
DATE_BOUNDS = {
    f"{event}_{side}": (f"{event}_at", side)
    for event in ("reserved", "manufactured", "provisioned")
    for side in ("after", "before")
}
STATUSES = ("reserved", "manufactured", "provisioned", "retired")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_AYLA_FILTER = re.compile(r"^filter\[([a-z_]+)\]$")
_DIGITS = re.compile(r"[0-9]{1,10}")
MAX_ID = 2**31 - 1


@dataclass
class DeviceSearch:
    # column -> value (a flag field's value is a bool)
    exact: dict[str, str | bool] = field(default_factory=dict)
    # field -> SQL LIKE pattern (with backslash escapes)
    like: dict[str, str] = field(default_factory=dict)
    # Never set: flag filters are in ``exact``. Kept while queries.search_statement reads it.
    ads_connect_flag: bool | None = None
    last_job_failed: bool | None = None
    # column -> (lower bound, upper bound)
    dates: dict[str, tuple[datetime | None, datetime | None]] = field(default_factory=dict)
    descending: bool = False
    after_dsn: str | None = None
    limit: int = DEFAULT_LIMIT
    action_id: int | None = None


def parse_search(params: Mapping[str, str]) -> DeviceSearch:
    """Validate the query string; every failure is listed in one AFS-600."""
    search, failures = DeviceSearch(), []
    for name, value in params.items():
        if value == "":
            continue
        problem = _apply(search, name, value)
        if problem:
            failures.append(problem)
    if failures:
        raise ValidationFailed.of(failures)
    return search


def refuse_secret_filters(search: DeviceSearch, *, sees_secrets: bool) -> None:
    """AFS-403 for a role that may not see a secret field and filters by it: wildcard
    searches would spell the value out one character at a time."""
    named = [name for name in SECRET_FIELDS if name in search.exact or name in search.like]
    if named and not sees_secrets:
        raise Forbidden(f"Forbidden: your role may not search by {', '.join(named)}")


def _apply(search: DeviceSearch, name: str, value: str) -> str | None:
    if not value.isprintable() or len(value) > 255:
        return f"{name} must be at most 255 printable characters"
    ayla = _AYLA_FILTER.match(name)
    if ayla:
        key = ayla.group(1)
        if key.endswith("_like"):
            return _like(search, key.removesuffix("_like"), value, ayla_form=True)
        return _exact(search, key, value)
    if name in WILDCARD_FIELDS:
        return (
            _like(search, name, value, ayla_form=False)
            if any(c in value for c in "*?")
            else _exact(search, name, value)
        )
    if name in EXACT_FIELDS or name in FLAG_FIELDS:
        return _exact(search, name, value)
    if name in DATE_BOUNDS:
        return _date(search, name, value)
    return _control(search, name, value)


def _exact(search: DeviceSearch, name: str, value: str) -> str | None:
    if name in FLAG_FIELDS:
        flag = parse_flag(value.strip().lower().replace("yes", "true").replace("no", "false"))
        if flag is None:
            return f"{name} {value} is not yes, no, true or false"
        search.exact[name] = flag
        return None
    if name not in EXACT_FIELDS:
        return f"{name} is not a searchable field"
    value = value.strip()
    if name in BY_NAME and BY_NAME[name].kind is Kind.MAC:
        value = normalize_mac(value) or value.lower()
    if name == "dsn":
        value = value.upper()
    if name == "status" and value not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}"
    search.exact[name] = value
    return None


def _like(search: DeviceSearch, name: str, value: str, *, ayla_form: bool) -> str | None:
    if name not in EXACT_FIELDS or name == "status":
        return f"{name} is not a searchable field"
    escaped = value.strip().replace("\\", "\\\\").replace("_", "\\_")
    escaped = escaped.replace("*", "%") if ayla_form else escaped.replace("%", "\\%").replace("*", "%")
    search.like[name] = escaped.replace("?", "_").upper() if name == "dsn" else escaped.replace("?", "_")
    return None


def _date(search: DeviceSearch, name: str, value: str) -> str | None:
    column, side = DATE_BOUNDS[name]
    moment = parse_moment(value)
    if moment is None:
        return f"{name} {value} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"
    low, high = search.dates.get(column, (None, None))
    search.dates[column] = (moment, high) if side == "after" else (low, moment)
    return None


def parse_moment(value: str) -> datetime | None:
    """ISO 8601 date or date-time; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "T").replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00+01:00 has no UTC time
        return None


def _control(search: DeviceSearch, name: str, value: str) -> str | None:
    if name == "errors":
        if value not in ("failure", "success"):
            return "errors must be failure or success"
        search.last_job_failed = value == "failure"
    elif name == "limit":
        if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
            return f"limit must be an integer between 1 and {MAX_LIMIT}"
        search.limit = int(value)
    elif name == "cursor":
        search.after_dsn = decode_cursor(value)
        if search.after_dsn is None:
            return "cursor is not valid"
    elif name == "order":
        if value not in ("asc", "desc"):
            return "order must be asc or desc"
        search.descending = value == "desc"
    elif name == "order_by":
        return None if value == "dsn" else "order_by must be dsn"
    elif name == "action_id":
        if not _DIGITS.fullmatch(value) or int(value) > MAX_ID:
            return "action_id must be an integer"
        search.action_id = int(value)
    else:
        return f"{name} is not a search parameter"
    return None


def encode_cursor(dsn: str) -> str:
    return base64.urlsafe_b64encode(dsn.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if text.isprintable() and 0 < len(text) <= 64 else None


def literal_prefix(pattern: str) -> str:
    """The part of a LIKE pattern before its first wildcard (``AC000W0012%45`` -> ``AC000W0012``)."""
    match = re.match(r"[^%_\\]*", pattern)
    return match.group(0) if match else ""
