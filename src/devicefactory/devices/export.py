"""The DSN View as a file: every device a search matches, as CSV (SPEC §13, docs/export.md).

Streamed like the action files (actions/files.py): a page of rows at a time in keyset
order on dsn, each page read in a short session of its own, so that memory stays
bounded whatever the number of rows, no database connection is held between pages, and
the export stops when its client goes (Starlette stops iterating the chunks).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts.policy import Actor
from devicefactory.accounts.schemas import iso
from devicefactory.device_fields import FIELDS, DeviceField, Kind
from devicefactory.devices import queries
from devicefactory.devices.schemas import MASK, field_json
from devicefactory.devices.search import DeviceSearch, parse_search, refuse_secret_filters
from devicefactory.http.csvcells import csv_rows
from devicefactory.tables.devices import Device

# Rows per page (per read session); a module constant that tests lower to cross pages.
PAGE = 1000
# The search's own page size means nothing here: an export holds every matching device.
IGNORED = ("limit",)
# The device JSON's dates and the OEMs, as ``devices.schemas.device_json`` names them.
_AFTER_FIELDS = (
    ("reserved_by", Device.reserved_by_oem_id, None),
    ("oem", Device.owner_oem_id, None),
    ("reserve_action_id", Device.reserve_action_id, None),
    ("reserved_at", Device.reserved_at, iso),
    ("manufactured_at", Device.manufactured_at, iso),
    ("provisioned_at", Device.provisioned_at, iso),
    ("verified_at", Device.verified_at, iso),
    ("last_job_failed", Device.last_job_failed, None),
)
COLUMNS = ("dsn", "model", "status", *(f.name for f in FIELDS), *(name for name, _, _ in _AFTER_FIELDS))
_SELECTED = (
    Device.dsn,
    Device.model,
    Device.status,
    *(getattr(Device, f.name) for f in FIELDS),
    *(column for _, column, _ in _AFTER_FIELDS),
)

Cell = Callable[[Any], object]


@dataclass(frozen=True)
class DeviceExport:
    """The file to send (``http.streaming.Streamed``): its rows are read as it is sent."""

    filename: str
    media_type: str
    chunks: Iterator[bytes]


def export_devices(actor: Actor, params: Mapping[str, str], *, pages: sessionmaker[Session]) -> DeviceExport:
    """Every device of the DSN View search ``params`` within ``actor``'s reach, in DSN order.

    The parameters are checked now (AFS-600, AFS-403 before any byte is sent); the rows
    are read later, a page at a time through ``pages``. ``cursor`` starts after that DSN
    (to resume an export that broke off); ``limit`` is ignored.
    """
    search = parse_search({name: value for name, value in params.items() if name not in IGNORED})
    refuse_secret_filters(search, sees_secrets=actor.sees_secrets)
    return DeviceExport("devices.csv", "text/csv", _chunks(pages, actor, search))


def _chunks(pages: sessionmaker[Session], actor: Actor, search: DeviceSearch) -> Iterator[bytes]:
    yield csv_rows([COLUMNS])
    cells = _cells(actor)
    while True:
        search = dataclasses.replace(search, limit=PAGE)
        with pages() as session:  # closed before the page is sent: no connection between pages
            statement = queries.search_statement(session, actor, search).with_only_columns(*_SELECTED)
            rows = session.execute(statement).all()
        if rows:
            yield csv_rows([cell(value) for cell, value in zip(cells, row, strict=True)] for row in rows)
        if len(rows) < search.limit:
            return
        search = dataclasses.replace(search, after_dsn=rows[-1][0])


def _cells(actor: Actor) -> Sequence[Cell]:
    """How each column's value is written: as the device JSON shows it, secrets masked."""

    def plain(value: Any) -> object:
        return _flag(value) if isinstance(value, bool) else value

    def field_cell(field: DeviceField) -> Cell:
        if field.secret and not actor.sees_secrets:
            return lambda _value: MASK
        if field.kind is Kind.FLAG:
            return _flag
        return lambda value: field_json(field, value)

    return (
        plain,
        plain,
        plain,
        *(field_cell(field) for field in FIELDS),
        *(render or plain for _, _, render in _AFTER_FIELDS),
    )


def _flag(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")
