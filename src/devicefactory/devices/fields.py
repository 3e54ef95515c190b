"""Pure rules for the manufacture and provision fields (§4 "Field rules")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devicefactory import device_fields
from devicefactory.device_fields import BY_NAME, FIELDS, DeviceField, Kind, Role, in_order, with_role
from devicefactory.errors import InvalidDate

# The device's own model comes first in both seed tables; the rest is the field table's.
MANUFACTURE_REQUIRED = ("model", *with_role("manufacture", Role.REQUIRED))
MANUFACTURE_FIELDS = tuple(f.name for f in in_order("manufacture"))
PROVISION_ALWAYS_REQUIRED = ("model", *with_role("provision", Role.REQUIRED))
# Required on provision unless manufacture already set them, in the seed table's order.
PROVISION_TABLE_ORDER = ("model", *with_role("provision", Role.REQUIRED, Role.REQUIRED_UNLESS_SET))
PROVISION_FIELDS = tuple(f.name for f in in_order("provision"))
# Fields that manufacture sets and provision may only repeat, never change.
FACTORY_FIELDS = device_fields.FACTORY_FIELDS
_MAC_SEPARATORS = re.compile(r"[:\-]")
_HEX12 = re.compile(r"^[0-9a-f]{12}$")
_DOM_FORMAT = "%Y/%m/%d %H:%M:%S"
_DOM = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2}) +(\d{1,2}):(\d{2}):(\d{2}) +(?:UTC|GMT|utc|gmt)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TRUE = (True, 1, "1", "true", "True", "TRUE")
_FALSE = (False, 0, "0", "false", "False", "FALSE")


def is_missing(value: object) -> bool:
    """An empty string or JSON null counts as missing (§4)."""
    return value is None or value == "" or (isinstance(value, str) and not value.strip())


@dataclass
class CleanFields:
    """Normalised values of the fields given, and the failures found on the way."""

    values: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Moments that do not parse, by field: AFS-608 rather than a failure of AFS-600.
    bad_dates: dict[str, object] = field(default_factory=dict)


def clean_fields(raw: Mapping[str, object], names: tuple[str, ...]) -> CleanFields:
    """Normalise each of ``names`` (fields of the table) present in ``raw``; missing ones are left out."""
    result = CleanFields()
    values = result.values
    for name in names:
        value = raw.get(name)
        if value is None or value == "":
            continue
        if type(value) is str and name in _PLAIN_TEXT:
            # The common case of the upload path, inline: plain printable text.
            text = value.strip()
            if text and len(text) <= _SHORTEST_TEXT and text.isprintable():
                values[name] = text
                continue
            if not text:
                continue
        _clean_one(result, BY_NAME[name], value)
    return result


# Text fields, and a length every one of them takes (the fast path needs no lookup).
_PLAIN_TEXT = frozenset(f.name for f in FIELDS if f.kind is Kind.TEXT)
_SHORTEST_TEXT = min((f.max_length for f in FIELDS if f.kind is Kind.TEXT), default=0)


def _clean_one(result: CleanFields, spec: DeviceField, value: object) -> None:
    if is_missing(value):
        return
    name = spec.name
    if spec.kind is Kind.MOMENT:
        parsed = parse_dom(value)
        if parsed is None:
            result.bad_dates[name] = value
        else:
            result.values[name] = parsed
        return
    if spec.kind is Kind.FLAG:
        flag = parse_flag(value)
        if flag is None:
            result.failures.append(f"{name} {value} is not true, false, 1 or 0")
        else:
            result.values[name] = flag
        return
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        result.failures.append(f"{name} must be a string")
        return
    text = str(value).strip()
    problem = _text_problem(spec, text)
    if problem:
        result.failures.append(problem)
    else:
        result.values[name] = normalize_mac(text) if spec.kind is Kind.MAC else text


def _text_problem(spec: DeviceField, text: str) -> str | None:
    name = spec.name
    if spec.kind is Kind.MAC:
        return None if normalize_mac(text) else f"{name} {text} is not 12 hex digits"
    if len(text) > spec.max_length:
        return f"{name} is longer than {spec.max_length} characters"
    if text.isprintable():  # the common case, in C
        return None
    if spec.printable:
        return f"{name} must be printable characters"
    return f"{name} contains control characters" if _CONTROL.search(text) else None


def clean_unique(name: str, value: object) -> str | None:
    """A unique field's value as the rules will clean it; None when they would refuse it."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or is_missing(value):
        return None
    text = str(value).strip()
    if not text.isprintable():
        return None
    return normalize_mac(text) if BY_NAME[name].kind is Kind.MAC else text


def normalize_mac(text: str) -> str | None:
    """12 hex digits with optional ``:`` or ``-`` separators -> 12 lowercase hex digits."""
    compact = _MAC_SEPARATORS.sub("", text).lower()
    return compact if _HEX12.match(compact) else None


def parse_dom(value: object) -> datetime | None:
    """``%Y/%m/%d %H:%M:%S UTC`` (GMT too) -> an aware UTC datetime; None when invalid."""
    if not isinstance(value, str):
        return None
    match = _DOM.match(value.strip())
    if match is None:
        return None
    try:  # strptime costs ten times this on the upload hot path
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def check_date(cleaned: CleanFields) -> None:
    for value in cleaned.bad_dates.values():
        raise InvalidDate(value)


def parse_flag(value: object) -> bool | None:
    if any(value == t and type(value) is type(t) for t in _TRUE):
        return True
    if any(value == f and type(value) is type(f) for f in _FALSE):
        return False
    return None


def format_dom(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def display(name: str, value: object) -> str:
    """A field value as people read it in messages (dates in the input format)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_DOM_FORMAT) + " UTC"
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)
