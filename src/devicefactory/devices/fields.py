"""Pure rules for the manufacture and provision fields (§4 "Field rules")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devicefactory.errors import InvalidDate

# Required fields in the order of the seed's tables (AFS-607 lists them in this order).
MANUFACTURE_REQUIRED = ("model", "mac", "hwsig", "dom_at")
MANUFACTURE_OPTIONAL = (
    "manuf_model",
    "manuf_sn",
    "odm",
    "module_sw_version",
    "wifi_setup_key",
    "ads_connect_flag",
)
PROVISION_ALWAYS_REQUIRED = ("model", "oem_model", "oem_host_version")
# Required on provision unless manufacture already set them (seed table 7 order).
PROVISION_FACTORY_REQUIRED = ("manuf_model", "mac", "hwsig", "module_sw_version", "dom_at")
PROVISION_TABLE_ORDER = (
    "model",
    "manuf_model",
    "mac",
    "hwsig",
    "oem_model",
    "module_sw_version",
    "oem_host_version",
    "dom_at",
)
PROVISION_OPTIONAL = ("manuf_sn", "odm", "wifi_setup_key", "ads_connect_flag")
PROVISION_FIELDS = tuple(n for n in PROVISION_TABLE_ORDER + PROVISION_OPTIONAL if n != "model")
# Fields that manufacture sets and provision may only repeat, never change.
FACTORY_FIELDS = (
    "mac",
    "hwsig",
    "dom_at",
    "manuf_model",
    "manuf_sn",
    "odm",
    "module_sw_version",
    "wifi_setup_key",
    "ads_connect_flag",
)
MAX_TEXT = 255
MAX_HWSIG = 128
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
    bad_date: object | None = None


def clean_fields(raw: Mapping[str, object], names: tuple[str, ...]) -> CleanFields:
    """Normalise each of ``names`` present in ``raw``; missing ones are left out."""
    result = CleanFields()
    values = result.values
    for name in names:
        value = raw.get(name)
        if value is None or value == "":
            continue
        if type(value) is str and name not in _SPECIAL:
            # The common case of the upload path, inline: plain printable text.
            text = value.strip()
            if text and len(text) <= MAX_HWSIG and text.isprintable():
                values[name] = text
                continue
            if not text:
                continue
        _clean_one(result, name, value)
    return result


# Fields with rules of their own (the rest are plain text).
_SPECIAL = frozenset({"dom_at", "ads_connect_flag", "mac"})


def _clean_one(result: CleanFields, name: str, value: object) -> None:
    if is_missing(value):
        return
    if name == "dom_at":
        parsed = parse_dom(value)
        if parsed is None:
            result.bad_date = value
        else:
            result.values[name] = parsed
        return
    if name == "ads_connect_flag":
        flag = parse_flag(value)
        if flag is None:
            result.failures.append(f"ads_connect_flag {value} is not true, false, 1 or 0")
        else:
            result.values[name] = flag
        return
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        result.failures.append(f"{name} must be a string")
        return
    text = str(value).strip()
    problem = _text_problem(name, text)
    if problem:
        result.failures.append(problem)
    else:
        result.values[name] = normalize_mac(text) if name == "mac" else text


def _text_problem(name: str, text: str) -> str | None:
    if name == "mac":
        return None if normalize_mac(text) else f"mac {text} is not 12 hex digits"
    limit = MAX_HWSIG if name == "hwsig" else MAX_TEXT
    if len(text) > limit:
        return f"{name} is longer than {limit} characters"
    if text.isprintable():  # the common case, in C
        return None
    if name == "hwsig":
        return "hwsig must be printable characters"
    return f"{name} contains control characters" if _CONTROL.search(text) else None


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
    if cleaned.bad_date is not None:
        raise InvalidDate(cleaned.bad_date)


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
