"""SQL of the key pool."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from devicefactory.counters import KEYS_GENERATED, advance_counter
from devicefactory.db import execute_many
from devicefactory.keys.crypto import SealedKeyPair
from devicefactory.tables.keys import FillerReport, MasterKeyRotation, PoolKey


def pool_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PoolKey)) or 0


def take_keys(session: Session, count: int) -> Sequence[SealedKeyPair]:
    """Remove up to ``count`` keys from the pool in this transaction, oldest first.

    PostgreSQL: SKIP LOCKED lets concurrent reservations take disjoint keys without
    waiting on each other; SQLite has a single writer (BEGIN IMMEDIATE).
    """
    chosen = select(PoolKey.id).order_by(PoolKey.id).limit(count)
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    statement = (
        delete(PoolKey)
        .where(PoolKey.id.in_(chosen.scalar_subquery()))
        .returning(PoolKey.id, PoolKey.public_key, PoolKey.sealed_private_key, PoolKey.master_key_id)
    )
    rows = sorted(session.execute(statement).all())
    return [SealedKeyPair(row.public_key, row.sealed_private_key, row.master_key_id) for row in rows]


def add_keys(session: Session, pairs: Sequence[SealedKeyPair], now: datetime) -> None:
    session.execute(
        insert(PoolKey),
        [
            {
                "public_key": p.public_pem,
                "sealed_private_key": p.sealed_private,
                "master_key_id": p.key_id,
                "created_at": now,
            }
            for p in pairs
        ],
    )
    advance_counter(session, KEYS_GENERATED, len(pairs))


# A filler that has not reported for this long is not filling.
FILLER_SILENCE = timedelta(minutes=1)


def report_fill_rate(session: Session, worker_id: str, keys_per_second: float, now: datetime) -> None:
    make_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {"keys_per_second": keys_per_second, "updated_at": now}
    session.execute(
        make_insert(FillerReport)
        .values(worker_id=worker_id, **values)
        .on_conflict_do_update(index_elements=["worker_id"], set_=values)
    )


def fill_rate(session: Session, now: datetime) -> float:
    """Keys per second the running fillers make, together (0 when none is running)."""
    query = select(func.sum(FillerReport.keys_per_second)).where(
        FillerReport.updated_at >= now - FILLER_SILENCE
    )
    return float(session.scalar(query) or 0.0)


def forget_filler(session: Session, worker_id: str) -> None:
    session.execute(delete(FillerReport).where(FillerReport.worker_id == worker_id))


# --- master key rotation (keys.master) -------------------------------------------------------


def active_rotation(session: Session) -> MasterKeyRotation | None:
    query = select(MasterKeyRotation).where(MasterKeyRotation.finished_at.is_(None))
    return session.scalars(query).first()


def retired_key_ids(session: Session) -> set[str]:
    """Master keys a finished rotation replaced: none may seal again."""
    query = select(MasterKeyRotation.old_key_id).where(MasterKeyRotation.finished_at.is_not(None))
    return set(session.scalars(query))


def sealed_otherwise(session: Session, table: Table, key_id: str, limit: int) -> Sequence[Any]:
    """Up to ``limit`` rows of ``table`` (key_pool or devices) not sealed with ``key_id``,
    each (key, public_key, sealed_private_key, master_key_id), locked (PostgreSQL)."""
    key = _row_key(table)
    query = (
        select(key.label("key"), table.c.public_key, table.c.sealed_private_key, table.c.master_key_id)
        .where(
            or_(table.c.master_key_id.is_(None), table.c.master_key_id != key_id),
            table.c.sealed_private_key.is_not(None),
        )
        .order_by(key)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).all()


def count_sealed_otherwise(session: Session, table: Table, key_id: str) -> int:
    query = (
        select(func.count())
        .select_from(table)
        .where(
            or_(table.c.master_key_id.is_(None), table.c.master_key_id != key_id),
            table.c.sealed_private_key.is_not(None),
        )
    )
    return session.scalar(query) or 0


def store_resealed(session: Session, table: Table, rows: Sequence[tuple[Any, bytes, str]]) -> None:
    """Write (key, sealed private key, master key id) back."""
    execute_many(
        session.connection(),
        lambda: (
            update(table)
            .where(_row_key(table) == bindparam("row_key"))
            .values(sealed_private_key=bindparam("sealed"), master_key_id=bindparam("key_id"))
        ),
        [{"row_key": k, "sealed": sealed, "key_id": key_id} for k, sealed, key_id in rows],
        key=("store_resealed", table.name),
    )


def _row_key(table: Table) -> Any:
    return next(iter(table.primary_key.columns))
