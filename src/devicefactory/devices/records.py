"""A device's factory state as plain Python, for the hot paths (API writes, upload batches).

Loading and flushing ORM objects costs several times the SQL for these paths, so the
factory-data rules work on ``DeviceRecord`` and changes go out as executemany updates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from devicefactory.device_fields import FIELDS

# The columns the manufacture/provision rules read or write (never the key material).
RECORD_COLUMNS = (
    "dsn",
    "model",
    "status",
    "reserved_by_oem_id",
    "owner_oem_id",
    *(field.name for field in FIELDS),
    "manufactured_at",
    "provisioned_at",
    "last_job_failed",
)


class DeviceRecord:
    """Attribute access like the ORM ``Device``; assignments are remembered in ``changed``.

    The device's own columns are typed here; its fields (``FIELDS``) are read as ``Any``.
    """

    dsn: str
    model: str
    status: str
    reserved_by_oem_id: str | None
    owner_oem_id: str | None
    manufactured_at: datetime | None
    provisioned_at: datetime | None
    last_job_failed: bool

    def __init__(self, values: dict[str, Any]) -> None:
        # Straight into __dict__: __setattr__ would count the loaded values as changes.
        self.__dict__.update(values)
        self.__dict__["changed"] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        self.changed[name] = value

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name that was never loaded: the fields are all in __dict__.
        raise AttributeError(name)

    changed: dict[str, Any]
