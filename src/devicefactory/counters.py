"""Named counters (the next DSN number, keys generated so far), each advanced atomically.

They live below every domain: the key pool counts keys, the reserve numbers DSNs.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from devicefactory.tables.devices import Counter

DSN_COUNTER = "dsn"
KEYS_GENERATED = "keys_generated"


def advance_counter(session: Session, name: str, by: int) -> int:
    """Add ``by`` to a counter atomically and return its value before the addition."""
    _ensure_counter(session, name)
    new_value: int | None = session.scalar(
        update(Counter)
        .where(Counter.name == name)
        .values(next_value=Counter.next_value + by)
        .returning(Counter.next_value)
    )
    assert new_value is not None
    return new_value - by


def counter_value(session: Session, name: str) -> int:
    value: int | None = session.scalar(select(Counter.next_value).where(Counter.name == name))
    return value or 0


def _ensure_counter(session: Session, name: str) -> None:
    dialect = session.get_bind().dialect.name
    make_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        make_insert(Counter)
        .values(name=name, next_value=1 if name == DSN_COUNTER else 0)
        .on_conflict_do_nothing(index_elements=["name"])
    )
