"""SQL of the key pool."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from devicefactory.devices.queries import KEYS_GENERATED, advance_counter
from devicefactory.keys.crypto import SealedKeyPair
from devicefactory.keys.models import FillerReport, PoolKey


def pool_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PoolKey)) or 0


def take_keys(session: Session, count: int) -> Sequence[tuple[str, bytes]]:
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
        .returning(PoolKey.id, PoolKey.public_key, PoolKey.sealed_private_key)
    )
    rows = sorted(session.execute(statement).all())
    return [(row.public_key, row.sealed_private_key) for row in rows]


def add_keys(session: Session, pairs: Sequence[SealedKeyPair], now: datetime) -> None:
    session.execute(
        insert(PoolKey),
        [
            {"public_key": p.public_pem, "sealed_private_key": p.sealed_private, "created_at": now}
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
