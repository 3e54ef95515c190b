"""The audit log's hash chain (SPEC §13): canonical entries, their hashes, appending, verifying.

``entry_hash = SHA-256(previous entry's hash + canonical JSON of this entry)``, where the
canonical JSON holds the fields ``at`` (ISO 8601 UTC, microseconds, ``Z``), ``user_id``,
``user_email``, ``oem_id``, ``client``, ``request_id``, ``what``, ``dsn``, ``action_id`` and
``object``, with sorted keys and no spaces. The first entry's previous hash is 64 zeros.

Entries form one line even with many writers: ``append`` locks the one ``audit_head`` row
(PostgreSQL: ``SELECT ... FOR UPDATE``, held to the commit; SQLite: the write transaction
is already exclusive, ``BEGIN IMMEDIATE`` in ``db.make_engine``), so the next writer reads
the head only after this one committed or rolled back. The lock is taken as late as
possible, just before the commit, so that writers queue on it only for that moment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from devicefactory.db import execute_one, make_reader_engine
from devicefactory.tables.audit import AuditEntry, AuditHead

ZERO_HASH = "0" * 64
HEAD_ID = 1
# The columns' widths: a value is cut to fit before it is hashed, so the stored entry and
# its hash always agree (PostgreSQL would refuse a longer value, SQLite would keep it).
_WIDTHS = {"user_email": 255, "oem_id": 8, "client": 64, "request_id": 64, "what": 64, "dsn": 32}


@dataclass(frozen=True)
class EntryFields:
    """What an entry says: the hashed fields."""

    at: datetime
    what: str
    user_id: int | None = None
    user_email: str | None = None
    oem_id: str | None = None
    client: str | None = None
    request_id: str | None = None
    dsn: str | None = None
    action_id: int | None = None
    object: Mapping[str, Any] = field(default_factory=dict)

    def fitted(self) -> EntryFields:
        """The fields cut to their columns' widths, the time to whole microseconds in UTC."""
        return EntryFields(
            at=self.at.astimezone(UTC),
            what=self.what[: _WIDTHS["what"]],
            user_id=self.user_id,
            user_email=_cut(self.user_email, "user_email"),
            oem_id=_cut(self.oem_id, "oem_id"),
            client=_cut(self.client, "client"),
            request_id=_cut(self.request_id, "request_id"),
            dsn=_cut(self.dsn, "dsn"),
            action_id=self.action_id,
            object=json.loads(canonical_json(self.object)),
        )


def _cut(value: str | None, name: str) -> str | None:
    return None if value is None else value[: _WIDTHS[name]]


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 characters as they are."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_entry(fields: EntryFields) -> str:
    """The canonical JSON of an entry's hashed fields."""
    return canonical_json(
        {
            "at": iso_utc(fields.at),
            "user_id": fields.user_id,
            "user_email": fields.user_email,
            "oem_id": fields.oem_id,
            "client": fields.client,
            "request_id": fields.request_id,
            "what": fields.what,
            "dsn": fields.dsn,
            "action_id": fields.action_id,
            "object": fields.object,
        }
    )


def chain_hash(previous_hash: str, fields: EntryFields) -> str:
    return hashlib.sha256((previous_hash + canonical_entry(fields)).encode()).hexdigest()


def fields_of(entry: AuditEntry) -> EntryFields:
    """The hashed fields of a stored entry (its ``object`` column is canonical JSON)."""
    try:
        details = json.loads(entry.object)
    except (TypeError, ValueError):
        details = entry.object  # not JSON any more: it was changed, and the hash will say so
    return EntryFields(
        at=entry.at,
        user_id=entry.user_id,
        user_email=entry.user_email,
        oem_id=entry.oem_id,
        client=entry.client,
        request_id=entry.request_id,
        what=entry.what,
        dsn=entry.dsn,
        action_id=entry.action_id,
        object=details,
    )


# Built once: an entry is three short statements, and building them anew (or going through
# the ORM's unit of work) cost more than running them (measured: ~2 ms a request down to
# a fraction of one).
_ENTRIES = cast(Table, AuditEntry.__table__)
_HEADS = cast(Table, AuditHead.__table__)
_INSERT_ENTRY = (
    insert(_ENTRIES)
    .values({c.name: bindparam(c.name) for c in _ENTRIES.c if c.name != "id"})
    .returning(_ENTRIES.c.id)
)
_UPDATE_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.id == HEAD_ID)
    .values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"), entries=_HEADS.c.entries + 1)
)
_LOCK_HEAD = select(_HEADS.c.last_hash).where(_HEADS.c.id == HEAD_ID).with_for_update()  # no-op on SQLite
# Two writers that both find no head (a database emptied by hand) must not both fail.
_NEW_HEAD = {
    "postgresql": pg_insert(_HEADS).on_conflict_do_nothing(index_elements=["id"]),
    "sqlite": sqlite_insert(_HEADS).on_conflict_do_nothing(index_elements=["id"]),
}
_NEW_HEAD_VALUES = {"id": HEAD_ID, "last_id": 0, "last_hash": ZERO_HASH, "entries": 0}


def append(session: Session, fields: EntryFields) -> int:
    """Add one entry at the chain's end, in the caller's transaction (committed with it);
    returns its id."""
    fields = fields.fitted()
    connection = session.connection()
    previous_hash = execute_one(connection, lambda: _LOCK_HEAD, {}, key="audit.lock_head")
    if previous_hash is None:
        # The migration writes the head; a database emptied by hand starts a new chain.
        connection.execute(_NEW_HEAD[connection.dialect.name], _NEW_HEAD_VALUES)
        previous_hash = connection.execute(_LOCK_HEAD).scalar_one()
    entry_hash = chain_hash(previous_hash, fields)
    values = {
        "at": fields.at,
        "user_id": fields.user_id,
        "user_email": fields.user_email,
        "oem_id": fields.oem_id,
        "client": fields.client,
        "request_id": fields.request_id,
        "what": fields.what,
        "dsn": fields.dsn,
        "action_id": fields.action_id,
        "object": canonical_json(fields.object),
        "previous_hash": previous_hash,
        "entry_hash": entry_hash,
    }
    entry_id: int = execute_one(connection, lambda: _INSERT_ENTRY, values, key="audit.insert_entry")
    execute_one(
        connection, lambda: _UPDATE_HEAD, {"new_id": entry_id, "new_hash": entry_hash}, key="audit.head"
    )
    return entry_id


# --- verifying -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The chain's state: ``problem`` is None when it is intact."""

    entries: int
    last_hash: str
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_database(url: str) -> Verdict:
    """``verify`` on the database at ``url``, in one snapshot: PostgreSQL's REPEATABLE READ,
    SQLite's read transaction (the reader's DEFERRED begin: writers are never held up)."""
    engine = make_reader_engine(url)
    try:
        with Session(engine) as session:
            if engine.dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            return verify(session)
    finally:
        engine.dispose()


def verify(session: Session, *, batch: int = 1000) -> Verdict:
    """Walk the chain in id order and name the first entry changed, removed or inserted.

    Read in one transaction (the caller makes it a snapshot), so that entries appended
    meanwhile are not taken for inserted ones.
    """
    head = session.get(AuditHead, HEAD_ID)
    links = _Links()
    entries = _entries(session, batch)
    current = next(entries, None)
    while current is not None:
        following = next(entries, None)
        problem = _problem(current, following, links, head)
        if problem is not None:
            return Verdict(links.count, links.expected, problem)
        links.step(current)
        current = following
    return Verdict(links.count, links.expected, _tail_problem(head, links.previous, links.count))


@dataclass
class _Links:
    """Where the walk is: the last good entry, its hash, and the hash of the one before it."""

    expected: str = ZERO_HASH
    before_previous: str | None = None
    previous: AuditEntry | None = None
    count: int = 0

    def step(self, entry: AuditEntry) -> None:
        self.before_previous, self.expected = self.expected, entry.entry_hash
        self.previous, self.count = entry, self.count + 1


def _entries(session: Session, batch: int) -> Iterator[AuditEntry]:
    after = 0
    while True:
        page = session.scalars(
            select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id).limit(batch)
        ).all()
        yield from page
        if len(page) < batch:
            return
        after = page[-1].id
        session.expunge_all()


def _problem(
    entry: AuditEntry, following: AuditEntry | None, links: _Links, head: AuditHead | None
) -> str | None:
    """What is wrong with ``entry``, after the walk's last good entry; None if nothing."""
    if head is not None and entry.id > head.last_id:
        return f"entry {entry.id} was inserted: the chain's head ends at entry {head.last_id}"
    expected, previous = links.expected, links.previous
    hash_fits = chain_hash(entry.previous_hash, fields_of(entry)) == entry.entry_hash
    link_fits = entry.previous_hash == expected
    if hash_fits and link_fits:
        return None
    if following is not None and following.previous_hash == expected:
        return f"entry {entry.id} was inserted: the next entry, {following.id}, links to the one before it"
    if previous is not None and entry.previous_hash == links.before_previous:
        # A forger who chained a well-formed entry in: the next one still links past it.
        return f"entry {previous.id} was inserted: the next entry, {entry.id}, links to the one before it"
    if hash_fits:  # a well-formed entry that follows another: what came before it went
        after = f"after entry {previous.id}" if previous is not None else "at the chain's start"
        gap = (
            f" (entries {previous.id + 1} to {entry.id - 1})"
            if previous and entry.id - previous.id > 1
            else ""
        )
        return f"an entry was removed before entry {entry.id}, {after}{gap}: its previous hash does not match"
    return f"entry {entry.id} was changed: its hash does not match its fields"


def _tail_problem(head: AuditHead | None, last: AuditEntry | None, count: int) -> str | None:
    if head is None:
        return None if last is None else "the chain's head row is missing"
    last_id, last_hash = (last.id, last.entry_hash) if last is not None else (0, ZERO_HASH)
    if head.last_id > last_id:
        after = f"after entry {last_id}" if last is not None else "from the start"
        return f"the chain's tail was removed: entries {after} up to entry {head.last_id} are missing"
    if head.last_hash != last_hash:
        return f"entry {last_id} was changed: the chain's head holds another hash for it"
    if head.entries != count:
        return f"the chain's head counts {head.entries} entries, the log holds {count}: entries were removed"
    return None
