"""A device's factory state as plain Python, for the hot paths (API writes, upload batches).

Loading and flushing ORM objects costs several times the SQL for these paths, so the
factory-data rules work on ``DeviceRecord`` and changes go out as executemany updates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

# The columns the manufacture/provision rules read or write (never the key material).
RECORD_COLUMNS = (
    "dsn",
    "model",
    "status",
    "reserved_by_oem_id",
    "owner_oem_id",
    "mac",
    "hwsig",
    "dom_at",
    "manuf_model",
    "manuf_sn",
    "odm",
    "module_sw_version",
    "oem_host_version",
    "wifi_setup_key",
    "ads_connect_flag",
    "oem_model",
    "manufactured_at",
    "provisioned_at",
    "last_job_failed",
)


class DeviceRecord:
    """Attribute access like the ORM ``Device``; assignments are remembered in ``changed``."""

    dsn: str
    model: str
    status: str
    reserved_by_oem_id: str | None
    owner_oem_id: str | None
    mac: str | None
    hwsig: str | None
    dom_at: datetime | None
    manuf_model: str | None
    manuf_sn: str | None
    odm: str | None
    module_sw_version: str | None
    oem_host_version: str | None
    wifi_setup_key: str | None
    ads_connect_flag: bool | None
    oem_model: str | None
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

    changed: dict[str, Any]
