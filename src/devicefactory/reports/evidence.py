"""Reading evidence back out of what jobs and upload lines recorded (pure, no SQL).

Refusals are stored as messages (``mac is already taken``), the changes a conflict named
(``mac: 00000000000a -> 00000000000b``) and, for upload lines, the raw line; these helpers
turn them back into fields and values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from devicefactory.actions.logfile import LogRecord, UploadFormat, UploadParser, parse_log_line
from devicefactory.device_fields import FIELDS, SECRET_FIELDS, UNIQUE_FIELDS
from devicefactory.devices.fields import clean_unique

TAKEN = "is already taken"
MISMATCH = "does not match the manufactured value"
MASK = "****"
_NAMES = "|".join(sorted((re.escape(f.name) for f in FIELDS), key=len, reverse=True))
# "mac or hwsig is already taken" is the refusal of a call that lost a race for the value.
_TAKEN = re.compile(rf"(?:^|: |, )((?:{_NAMES})(?: or (?:{_NAMES}))?) {TAKEN}")
_MISMATCH = re.compile(rf"(?:^|: |, )({_NAMES}) {MISMATCH} (.*?)(?=, (?:{_NAMES}) |$)")
_CHANGE_START = re.compile(rf"(?:^|; )({_NAMES}): ")
_ARROW = " -> "
_NONE = "(none)"


def taken_fields(message: str | None) -> list[str]:
    """The unique fields a refusal says were taken: ``mac``, ``hwsig`` or ``mac or hwsig``."""
    found: list[str] = _TAKEN.findall(message or "")
    return [name for name in found if all(part in UNIQUE_FIELDS for part in name.split(" or "))]


def mismatches(message: str | None) -> list[tuple[str, str]]:
    """(field, manufactured value) of each ``<field> does not match the manufactured value``."""
    return [(name, value) for name, value in _MISMATCH.findall(message or "")]


def changes_of(text: str | None) -> list[tuple[str, str | None, str]]:
    """(field, stored value or None, claimed value) of each change a conflict recorded."""
    if not text:
        return []
    starts = list(_CHANGE_START.finditer(text))
    changes = []
    for here, after in zip(starts, [*starts[1:], None], strict=True):
        body = text[here.end() : after.start() if after else len(text)]
        old, _, new = body.partition(_ARROW)
        changes.append((here.group(1), None if old == _NONE else old, new))
    return changes


def line_fields(raw: str, file_format: str | None, file_header: str | None) -> Mapping[str, str]:
    """The fields (API names) of an upload line, read again as the runner read them."""
    if file_format == UploadFormat.CSV and file_header:
        parser = UploadParser()
        parser.parse_line(0, file_header.encode())
        parsed = parser.parse_line(1, raw.encode())
    else:
        parsed = parse_log_line(raw)
    return parsed.fields if isinstance(parsed, LogRecord) else {}


def call_claims(claimed: str) -> Mapping[str, str]:
    """What a refused API call claimed (``jobs.claimed``, a JSON object of field: value)."""
    try:
        values = json.loads(claimed)
    except ValueError:
        return {}
    if not isinstance(values, dict):
        return {}
    return {str(name): str(value) for name, value in values.items() if isinstance(value, str)}


def claimed_value(name: str, fields: Mapping[str, str]) -> str | None:
    """The value of a unique field a line claimed, cleaned as the rules clean it."""
    value = clean_unique(name, fields.get(name))
    if value is None and name == "hwsig" and (mac := clean_unique("mac", fields.get("mac"))):
        return f"mac-{mac}"  # a white-box line without a hwsig takes mac-<mac> (SPEC §4)
    return value


def is_unique_field(name: str) -> bool:
    return name in UNIQUE_FIELDS


def shown(name: str, value: str | None) -> str | None:
    """A value as the report shows it: secret fields are never repeated."""
    return MASK if value is not None and name in SECRET_FIELDS else value


_VERIFY_KINDS = (
    ("does not decrypt with this device's key", "wrong_key"),
    ("made for another device", "other_device"),
    ("already used", "replay"),
    ("within 5 minutes", "stale"),
)


def verify_kind(message: str | None) -> str:
    """What a failed verify says about the module: wrong_key, other_device, replay, stale, other."""
    text = message or ""
    return next((kind for needle, kind in _VERIFY_KINDS if needle in text), "other")
