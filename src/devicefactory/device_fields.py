"""The one table of a device's factory fields (SPEC §4, §6, §7).

Each field is declared once, here: its kind and limits, the column it is stored in, its
name in the API and in factory log lines, how the DSN View searches it, its label on the
dashboard, what manufacture and provision make of it, and who may see it. The ORM model
(its columns), the device records of the hot paths, the log layouts, the search filters,
the API's schemas and the dashboard's columns and forms are all derived from it.

Adding a field is a row here and a migration (tests/test_device_fields.py checks that the
model, the migrations and the OpenAPI schema follow the table).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    TEXT = "text"  # printable text, at most ``max_length`` characters
    MAC = "mac"  # 12 hex digits (":" or "-" separators accepted), stored lowercase
    MOMENT = "moment"  # "%Y/%m/%d %H:%M:%S UTC" in, ISO 8601 UTC out
    FLAG = "flag"  # true/false, 1/0, "true"/"false"; null when unknown


class Role(enum.StrEnum):
    """What an operation makes of a field."""

    REQUIRED = "required"
    # Provision: required unless manufacture already set it (seed table 7).
    REQUIRED_UNLESS_SET = "required unless set"
    OPTIONAL = "optional"
    ABSENT = "absent"


class Search(enum.StrEnum):
    EXACT = "exact"  # filter[<name>] and ?<name>=, case-sensitive; filter[<name>_like] wildcards
    WILDCARD = "wildcard"  # also * and ? in ?<name>=
    FLAG = "flag"  # yes/no/true/false/1/0


@dataclass(frozen=True)
class DeviceField:
    name: str  # API name, column name, CSV upload column
    kind: Kind
    label: str  # the dashboard's
    manufacture: Role
    provision: Role
    max_length: int = 255
    log_name: str | None = None  # the seed's name in factory log lines (None: not in logs)
    search: Search = Search.EXACT
    unique: bool = False  # over all devices (AFS-600 "... is already taken")
    # Set by manufacture; provision may repeat it, never change it.
    factory: bool = True
    # Shown to every role; a secret field is masked (****) for read-only viewers.
    secret: bool = False
    # Where the dashboard shows it: the device page's card.
    card: str = "Factory data"


REQ, UNLESS, OPT, NO = Role.REQUIRED, Role.REQUIRED_UNLESS_SET, Role.OPTIONAL, Role.ABSENT

# In the order of the seed's tables (AFS-607 lists missing fields in this order).
FIELDS: tuple[DeviceField, ...] = (
    DeviceField("mac", Kind.MAC, "MAC address", REQ, UNLESS, max_length=12, log_name="mac", unique=True),
    DeviceField(
        "hwsig", Kind.TEXT, "Hardware signature", REQ, UNLESS, max_length=128, log_name="hwsig", unique=True
    ),
    DeviceField("dom_at", Kind.MOMENT, "Date of manufacture (UTC)", REQ, UNLESS, log_name="timestamp"),
    DeviceField("manuf_model", Kind.TEXT, "Manufacturer model", OPT, UNLESS, log_name="mfg_model"),
    DeviceField("manuf_sn", Kind.TEXT, "Manufacturer SN", OPT, OPT, log_name="mfg_sn"),
    DeviceField("odm", Kind.TEXT, "ODM", OPT, OPT, log_name="odm"),
    DeviceField("module_sw_version", Kind.TEXT, "Module SW version", OPT, UNLESS, log_name="mfg_sw_version"),
    DeviceField(
        "wifi_setup_key",
        Kind.TEXT,
        "WiFi setup key",
        OPT,
        OPT,
        log_name="wifi_setup_key",
        search=Search.WILDCARD,
        secret=True,
    ),
    DeviceField(
        "ads_connect_flag",
        Kind.FLAG,
        "ADS connect flag",
        OPT,
        OPT,
        log_name="ads_connect_flag",
        search=Search.FLAG,
    ),
    DeviceField(
        "oem_model", Kind.TEXT, "OEM model", NO, REQ, log_name="oem_model", factory=False, card="Product"
    ),
    DeviceField("oem_host_version", Kind.TEXT, "OEM host version", NO, REQ, factory=False, card="Product"),
)
BY_NAME = {field.name: field for field in FIELDS}


def named(*names: str) -> tuple[DeviceField, ...]:
    return tuple(BY_NAME[name] for name in names)


def with_role(operation: str, *roles: Role) -> tuple[str, ...]:
    """Names of the fields that ``operation`` (manufacture or provision) gives one of ``roles``."""
    return tuple(f.name for f in FIELDS if getattr(f, operation) in roles)


FACTORY_FIELDS = tuple(f.name for f in FIELDS if f.factory)
UNIQUE_FIELDS = tuple(f.name for f in FIELDS if f.unique)
SECRET_FIELDS = tuple(f.name for f in FIELDS if f.secret)
