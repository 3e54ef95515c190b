"""The one table of a device's factory fields (SPEC §4, §6, §7).

Each field is declared once, here: its kind and limits, the column it is stored in, its
name in the API and in factory log lines, how the DSN View searches it, its label on the
dashboard, what manufacture and provision make of it, and who may see it. The ORM model
(its columns), the device records of the hot paths, the log layouts, the search filters,
the API's schemas and the dashboard's columns and forms are all derived from it.

Two orders matter. The table's own order is the seed's manufacture table (AFS-607 on
manufacture lists missing fields in it) and every list of fields shown to people (the
device JSON, the device page, the search form). Provision follows its own seed table
(AFS-607 on provision): ``provision_row``.

Adding a field
--------------
1. A row in ``FIELDS``: its kind, label, what manufacture and provision make of it,
   its limits, its log name (or None), its search form, its card, ``provision_row``.
2. A migration adding the column to ``devices``
   (``src/devicefactory/migrations/versions/<date>_<n>_<what>.py``), and the matching
   ``mapped_column`` in ``tables/devices.py`` (mypy needs it spelled out there;
   tests/test_device_fields.py fails until it matches the row).

Nothing else: the cleaning rules, the records of the hot paths, the request and answer
bodies, ``/openapi.json``, the log layouts' names, the DSN View's filters, columns,
search form and device page all read the table. A field that only some log layouts
carry also needs its place in those layouts (``actions/logfile.py``), as SPEC §7 says.
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
    NONE = "none"  # not a filter of the DSN View (SPEC §6 lists none for it)


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
    # Every character printable (SPEC: hwsig); other text only refuses control characters.
    printable: bool = False
    # Its row in the seed's provision table (AFS-607 on provision lists missing fields in
    # this order); None: after those, in the table's order.
    provision_row: int | None = None
    # In the manufacture call's answer (the seed's: every field but oem_model, which the
    # provision answer adds with the owner).
    manufacture_reply: bool = True
    # A column of the DSN View's results.
    column: bool = False
    # In the first row of the DSN View's search form (else under "More filters").
    quick_search: bool = False
    # A machine code, shown in a monospace font.
    mono: bool = False


REQ, UNLESS, OPT, NO = Role.REQUIRED, Role.REQUIRED_UNLESS_SET, Role.OPTIONAL, Role.ABSENT

# In the order of the seed's manufacture table (AFS-607 lists missing fields in this order).
FIELDS: tuple[DeviceField, ...] = (
    DeviceField(
        "mac",
        Kind.MAC,
        "MAC address",
        REQ,
        UNLESS,
        max_length=12,
        log_name="mac",
        unique=True,
        provision_row=2,
        column=True,
        quick_search=True,
        mono=True,
    ),
    DeviceField(
        "hwsig",
        Kind.TEXT,
        "Hardware signature",
        REQ,
        UNLESS,
        max_length=128,
        log_name="hwsig",
        unique=True,
        printable=True,
        provision_row=3,
        mono=True,
    ),
    DeviceField(
        "dom_at",
        Kind.MOMENT,
        "Date of manufacture (UTC)",
        REQ,
        UNLESS,
        log_name="timestamp",
        search=Search.NONE,
        provision_row=7,
    ),
    DeviceField(
        "manuf_model",
        Kind.TEXT,
        "Manufacturer model",
        OPT,
        UNLESS,
        log_name="mfg_model",
        provision_row=1,
        column=True,
    ),
    DeviceField(
        "manuf_sn", Kind.TEXT, "Manufacturer SN", OPT, OPT, log_name="mfg_sn", provision_row=8, column=True
    ),
    DeviceField("odm", Kind.TEXT, "ODM", OPT, OPT, log_name="odm", provision_row=9),
    DeviceField(
        "module_sw_version",
        Kind.TEXT,
        "Module SW version",
        OPT,
        UNLESS,
        log_name="mfg_sw_version",
        provision_row=5,
    ),
    DeviceField(
        "wifi_setup_key",
        Kind.TEXT,
        "WiFi setup key",
        OPT,
        OPT,
        log_name="wifi_setup_key",
        search=Search.WILDCARD,
        secret=True,
        provision_row=10,
        mono=True,
    ),
    DeviceField(
        "ads_connect_flag",
        Kind.FLAG,
        "ADS connect flag",
        OPT,
        OPT,
        log_name="ads_connect_flag",
        search=Search.FLAG,
        provision_row=11,
    ),
    DeviceField(
        "oem_model",
        Kind.TEXT,
        "OEM model",
        NO,
        REQ,
        log_name="oem_model",
        factory=False,
        card="Product",
        provision_row=4,
        manufacture_reply=False,
        column=True,
    ),
    DeviceField(
        "oem_host_version",
        Kind.TEXT,
        "OEM host version",
        NO,
        REQ,
        factory=False,
        card="Product",
        provision_row=6,
        column=True,
    ),
)
BY_NAME = {field.name: field for field in FIELDS}


def named(*names: str) -> tuple[DeviceField, ...]:
    return tuple(BY_NAME[name] for name in names)


def in_order(operation: str) -> tuple[DeviceField, ...]:
    """The fields ``operation`` (manufacture or provision) reads, in its seed table's order."""
    used = [f for f in FIELDS if getattr(f, operation) is not Role.ABSENT]
    if operation == "provision":
        # sorted() is stable: fields without a row keep the table's order, after the rest.
        used.sort(key=lambda f: (f.provision_row is None, f.provision_row or 0))
    return tuple(used)


def with_role(operation: str, *roles: Role) -> tuple[str, ...]:
    """Names of the fields that ``operation`` gives one of ``roles``, in its seed table's order."""
    return tuple(f.name for f in in_order(operation) if getattr(f, operation) in roles)


FACTORY_FIELDS = tuple(f.name for f in FIELDS if f.factory)
UNIQUE_FIELDS = tuple(f.name for f in FIELDS if f.unique)
SECRET_FIELDS = tuple(f.name for f in FIELDS if f.secret)
