"""SQL of the devices domain; every tenant-owned query goes through ``reachable``."""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, Role
from devicefactory.db import execute_many, fetch_rows, insert_many
from devicefactory.devices.records import RECORD_COLUMNS, DeviceRecord
from devicefactory.devices.search import DeviceSearch, literal_prefix, refuse_secret_filters
from devicefactory.tables.accounts import ModuleModel
from devicefactory.tables.actions import ActionLine, FactoryAction
from devicefactory.tables.devices import Device, DeviceStatus, Job, UsedVerifyToken
from devicefactory.tenancy import visible_actions

DEVICES = cast(Table, Device.__table__)
JOBS = cast(Table, Job.__table__)
MODELS = cast(Table, ModuleModel.__table__)


class Reach(enum.Enum):
    """What a caller wants to do with a device; each has its own reach (§3)."""

    VIEW = "view"
    MANUFACTURE = "manufacture"
    PROVISION = "provision"
    VERIFY = "verify"
    FACTORY_RESET = "factory_reset"
    RETIRE = "retire"


def reachable(actor: Actor, reach: Reach = Reach.VIEW) -> ColumnElement[bool]:
    """The tenant wall: the devices ``actor`` may touch for ``reach``.

    A device outside it reads exactly like one that does not exist (404).
    """
    if actor.is_platform_admin:
        return true()
    oem = _tenant(actor)
    if reach is Reach.FACTORY_RESET:
        return Device.owner_oem_id == oem
    if reach is Reach.RETIRE:
        return _retirable_by(actor)
    clauses: list[ColumnElement[bool]] = []
    if actor.acts_as_module_manufacturer and reach in (Reach.VIEW, Reach.MANUFACTURE, Reach.VERIFY):
        clauses.append(Device.reserved_by_oem_id == oem)
    if actor.acts_as_module_oem and reach in (Reach.VIEW, Reach.PROVISION, Reach.VERIFY):
        clauses.append(Device.owner_oem_id == oem)
        if reach is not Reach.VIEW:
            # Black-box modules made by any module maker, not yet owned (the black-box flow).
            clauses.append(_unowned_manufactured_black_box())
    if actor.acts_as_software_oem and reach in (Reach.VIEW, Reach.PROVISION, Reach.VERIFY):
        clauses.append(or_(Device.reserved_by_oem_id == oem, Device.owner_oem_id == oem))
    if actor.read_only and reach is Reach.VIEW:  # OEM::Viewer: what its OEM reserved or owns
        clauses.append(or_(Device.reserved_by_oem_id == oem, Device.owner_oem_id == oem))
    return or_(*clauses) if clauses else false()


def _tenant(actor: Actor) -> BindParameter[str | None]:
    """The caller's OEM as a named parameter: a statement built for one caller serves
    every caller of the same role and kind of OEM (``find_devices`` keeps them)."""
    return bindparam("tenant_oem", actor.oem_id)


def _retirable_by(actor: Actor) -> ColumnElement[bool]:
    """Devices its OEM reserved, of the kinds its role reserves and makes (OEM::Admin: all)."""
    reserved = Device.reserved_by_oem_id == _tenant(actor)
    if actor.role is Role.OEM_ADMIN:
        return reserved
    kinds = [kind.value for kind in actor.reservable_kinds()]
    if not kinds:
        return false()
    return and_(reserved, Device.model.in_(select(ModuleModel.name).where(ModuleModel.kind.in_(kinds))))


def _unowned_manufactured_black_box() -> ColumnElement[bool]:
    black_box_models = select(ModuleModel.name).where(ModuleModel.kind == "black_box")
    return and_(
        Device.status == DeviceStatus.MANUFACTURED,
        Device.owner_oem_id.is_(None),
        Device.model.in_(black_box_models),
    )


def find_device(
    session: Session, actor: Actor, dsn: str, reach: Reach, *, lock: bool = False
) -> Device | None:
    if not plausible_dsn(dsn):
        return None  # a DSN the service never issues: not found, before any query
    query = select(Device).where(Device.dsn == dsn, reachable(actor, reach))
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def plausible_dsn(dsn: str) -> bool:
    return 0 < len(dsn) <= 32 and dsn.isprintable()


def reserved_count(session: Session, oem_id: str | None) -> int:
    owner = Device.reserved_by_oem_id.is_(None) if oem_id is None else Device.reserved_by_oem_id == oem_id
    query = select(func.count()).select_from(Device).where(owner, Device.status == DeviceStatus.RESERVED)
    return session.scalar(query) or 0


def destroy_keys(session: Session, dsns: Sequence[str]) -> None:
    """Crypto-shredding: the sealed private keys of ``dsns`` are gone for good (no master
    key, current or rotated, can open what no longer exists)."""
    for start in range(0, len(dsns), 900):
        session.execute(
            update(DEVICES)
            .where(DEVICES.c.dsn.in_(dsns[start : start + 900]))
            .values(sealed_private_key=None, master_key_id=None)
        )


def verify_token_used(session: Session, token_hash: str) -> bool:
    return session.get(UsedVerifyToken, token_hash) is not None


def use_verify_token(session: Session, token_hash: str, dsn: str, now: datetime, keep: timedelta) -> None:
    """Remember an accepted token (and forget those too old to be valid again)."""
    session.execute(delete(UsedVerifyToken).where(UsedVerifyToken.used_at < now - keep))
    session.add(UsedVerifyToken(token_hash=token_hash, dsn=dsn, used_at=now))
    session.flush()


def reserved_since(session: Session, oem_id: str | None, since: datetime) -> int:
    """How many devices ``oem_id`` (None: the platform) reserved since ``since``."""
    owner = Device.reserved_by_oem_id.is_(None) if oem_id is None else Device.reserved_by_oem_id == oem_id
    query = select(func.count()).select_from(Device).where(Device.reserved_at >= since, owner)
    return session.scalar(query) or 0


def insert_devices(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    insert_many(session.connection(), DEVICES, rows)


def insert_jobs(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    # Straight to the driver: the ORM's bulk path costs more than the insert itself here.
    insert_many(session.connection(), JOBS, rows)


def find_devices(
    session: Session, actor: Actor, dsns: Sequence[str], reach: Reach, *, lock: bool = True
) -> dict[str, DeviceRecord]:
    """The reachable devices among ``dsns``, locked for the rest of the transaction (``lock``)."""
    return find_devices_and_kinds(session, actor, dsns, reach, lock=lock)[0]


def find_devices_and_kinds(
    session: Session, actor: Actor, dsns: Sequence[str], reach: Reach, *, lock: bool = True
) -> tuple[dict[str, DeviceRecord], dict[str, str]]:
    """``find_devices``, and the kind of each found device's model, in the same statement."""
    found: dict[str, DeviceRecord] = {}
    kinds: dict[str, str] = {}
    unique = sorted({dsn for dsn in dsns if plausible_dsn(dsn)})
    connection = session.connection()  # Core rows: the ORM's result handling costs more here
    for row in _find_rows(connection, actor, reach, lock, unique):
        record = DeviceRecord(dict(zip(RECORD_COLUMNS, row[:-1], strict=True)))
        found[record.dsn] = record
        kinds[record.model] = row[-1]
    return found, kinds


def _find_rows(
    connection: Connection, actor: Actor, reach: Reach, lock: bool, dsns: list[str]
) -> Iterator[Sequence[Any]]:
    shape = (actor.role, actor.module_manufacturer, reach, lock)
    if len(dsns) == 1:  # an API call: the same statement, on the driver's cursor
        one = {"dsn": dsns[0], "tenant_oem": actor.oem_id}
        yield from fetch_rows(
            connection, lambda: _find_one_statement(actor, reach, lock), one, key=("find_one", *shape)
        )
        return
    query = _find_statement(actor, reach, lock)
    for start in range(0, len(dsns), 900):  # under every database's bound-parameter limit
        chunk = dsns[start : start + 900]
        yield from connection.execute(query, {"dsns": chunk, "tenant_oem": actor.oem_id})


# Every manufacture and provision looks its devices up: the statement is built once per
# shape of the tenant wall (the caller's role and kind of OEM), not once per request.
_FIND_STATEMENTS: dict[tuple[Role, bool, Reach, bool], Select[Any]] = {}


def _find_statement(actor: Actor, reach: Reach, lock: bool) -> Select[Any]:
    shape = (actor.role, actor.module_manufacturer, reach, lock)
    query = _FIND_STATEMENTS.get(shape)
    if query is None:
        query = _RECORDS.where(DEVICES.c.dsn.in_(bindparam("dsns", expanding=True)), reachable(actor, reach))
        if lock:
            query = query.with_for_update()
        _FIND_STATEMENTS[shape] = query
    return query


def _find_one_statement(actor: Actor, reach: Reach, lock: bool) -> Select[Any]:
    query = _RECORDS.where(DEVICES.c.dsn == bindparam("dsn"), reachable(actor, reach))
    return query.with_for_update() if lock else query


_MODEL_KIND = (
    select(MODELS.c.kind)
    .where(MODELS.c.name == DEVICES.c.model)
    .scalar_subquery()  # a column, not a join: FOR UPDATE locks the devices' rows alone
)
_RECORDS: Select[Any] = select(*(DEVICES.c[name] for name in RECORD_COLUMNS), _MODEL_KIND)
_NEW = {name: f"new_{name}" for name in RECORD_COLUMNS}


def update_devices(session: Session, records: Iterable[DeviceRecord]) -> None:
    """Write what changed, one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for record in records:
        if record.changed:
            names = tuple(sorted(record.changed))
            row = {_NEW[name]: value for name, value in record.changed.items()}
            row["key"] = record.dsn
            groups.setdefault(names, []).append(row)
    for names, rows in groups.items():
        execute_many(
            session.connection(),
            lambda names=names: (  # type: ignore[misc]
                update(DEVICES)
                .where(DEVICES.c.dsn == bindparam("key"))
                .values({n: bindparam(f"new_{n}") for n in names})
            ),
            rows,
            key=("update_devices", names),
        )


def unique_holders(session: Session, values: dict[str, set[str]]) -> dict[tuple[str, str], str]:
    """Which device holds each of the given mac / hwsig values: one statement for all the
    names together while their values fit under every database's bound-parameter limit."""
    holders: dict[tuple[str, str], str] = {}
    connection = session.connection()
    counts = tuple((name, len(found)) for name, found in values.items() if found)
    if counts and sum(count for _, count in counts) <= _FEW_VALUES:  # an API call: on the driver's cursor
        row = {f"{name}_{i}": v for name, found in values.items() for i, v in enumerate(sorted(found))}
        build = functools.partial(_few_holders_statement, counts)
        found_few = fetch_rows(connection, build, row, key=("holders", counts))
        return {(name, value): dsn for name, value, dsn in found_few}
    for group in _groups_under_limit(values, 900):
        query = _holders_statement(tuple(name for name, _ in group))
        rows = connection.execute(query, dict(group))
        holders.update(((name, value), dsn) for name, value, dsn in rows)
    return holders


# An API call claims a mac and a hwsig (and a white-box provision mac-<mac>): its statement
# has one parameter per value, so that it is compiled once and runs on the driver's cursor.
_FEW_VALUES = 8


def _few_holders_statement(counts: tuple[tuple[str, int], ...]) -> CompoundSelect[Any] | Select[Any]:
    parts = [
        select(literal(name), DEVICES.c[name], DEVICES.c.dsn).where(
            DEVICES.c[name].in_([bindparam(f"{name}_{i}") for i in range(count)])
        )
        for name, count in counts
    ]
    return parts[0] if len(parts) == 1 else union_all(*parts)


@functools.cache
def _holders_statement(names: tuple[str, ...]) -> CompoundSelect[Any] | Select[Any]:
    parts = [
        select(literal(name), DEVICES.c[name], DEVICES.c.dsn).where(
            DEVICES.c[name].in_(bindparam(name, expanding=True))
        )
        for name in names
    ]
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _groups_under_limit(values: dict[str, set[str]], limit: int) -> Iterator[list[tuple[str, list[str]]]]:
    """``(name, values)`` pieces in groups of at most ``limit`` values in all."""
    group: list[tuple[str, list[str]]] = []
    room = limit
    for name, wanted in values.items():
        ordered = sorted(wanted)
        while ordered:
            if room == 0:
                yield group
                group, room = [], limit
            piece, ordered = ordered[:room], ordered[room:]
            group.append((name, piece))
            room -= len(piece)
    if group:
        yield group


def jobs_of(session: Session, actor: Actor, dsn: str) -> Sequence[Job]:
    """The device's history as ``actor`` may see it (another OEM's refused calls left out)."""
    query = select(Job).where(Job.dsn == dsn)
    if not actor.is_platform_admin:
        query = query.where(or_(Job.visible_to_oem_id.is_(None), Job.visible_to_oem_id == actor.oem_id))
    return session.scalars(query.order_by(Job.id)).all()


def search_devices(session: Session, actor: Actor, search: DeviceSearch) -> Sequence[Device]:
    """The DSN View: filters, the tenant wall, keyset pagination on dsn, always LIMITed."""
    return session.scalars(search_statement(session, actor, search)).all()


def search_statement(session: Session, actor: Actor, search: DeviceSearch) -> Select[Device]:
    if search.dates and "dsn" not in search.like and "dsn" not in search.exact:
        return _date_range_statement(actor, search)
    return _filtered(select(Device), actor, search).limit(search.limit)


def _date_range_statement(actor: Actor, search: DeviceSearch) -> Select[Device]:
    """Pick the page's DSNs from the (date, dsn) index, then load only those rows.

    Devices are made in DSN order, so the matches of a date range sit together in DSN
    order: walking the primary key for them reads most of the table (PostgreSQL's
    planner does), and sorting whole rows costs SQLite ~19 k row copies. Ordering by
    ``dsn || ''`` keeps the same order but keeps the planner off the key.
    """
    page = _filtered(select(Device.dsn), actor, search, order_key=Device.dsn.concat("")).limit(search.limit)
    order = Device.dsn.desc() if search.descending else Device.dsn.asc()
    return select(Device).where(Device.dsn.in_(page.scalar_subquery())).order_by(order)


def _filtered(
    query: Select[Any], actor: Actor, search: DeviceSearch, order_key: ColumnElement[str] | None = None
) -> Select[Any]:
    refuse_secret_filters(search, sees_secrets=actor.sees_secrets)  # every search passes here
    query = query.where(reachable(actor, Reach.VIEW))
    for name, value in search.exact.items():
        query = query.where(getattr(Device, name) == value)
    for name, pattern in search.like.items():
        query = query.where(_like_clause(name, pattern))
    if search.ads_connect_flag is not None:
        query = query.where(Device.ads_connect_flag.is_(search.ads_connect_flag))
    if search.last_job_failed is not None:
        query = query.where(Device.last_job_failed.is_(search.last_job_failed))
    for column, (low, high) in search.dates.items():
        if low is not None:
            query = query.where(getattr(Device, column) >= low)
        if high is not None:
            query = query.where(getattr(Device, column) < high)
    if search.action_id is not None:
        query = query.where(Device.dsn.in_(_dsns_of_action(actor, search.action_id)))
    if search.after_dsn is not None:
        query = query.where(
            Device.dsn < search.after_dsn if search.descending else Device.dsn > search.after_dsn
        )
    key = Device.dsn if order_key is None else order_key
    return query.order_by(key.desc() if search.descending else key.asc())


def _like_clause(name: str, pattern: str) -> ColumnElement[bool]:
    column: ColumnElement[str] = getattr(Device, name)
    if name != "dsn":
        return column.ilike(pattern, escape="\\")  # the same on both databases
    # DSNs are upper case (the pattern too) and compare byte by byte on both databases,
    # so the literal part before the first wildcard bounds an index range on the key.
    condition = column.like(pattern, escape="\\")
    prefix = literal_prefix(pattern)
    return and_(column >= prefix, column < prefix + "\uffff", condition) if prefix else condition


def _dsns_of_action(actor: Actor, action_id: int) -> Select[tuple[str]]:
    """The DSNs an action named, if the action is the caller's to see (else none)."""
    visible = select(FactoryAction.id).where(FactoryAction.id == action_id, visible_actions(actor))
    touched = select(ActionLine.dsn).where(ActionLine.action_id.in_(visible), ActionLine.dsn.is_not(None))
    reserved = select(Device.dsn).where(Device.reserve_action_id.in_(visible))
    return touched.union(reserved)  # type: ignore[return-value]
