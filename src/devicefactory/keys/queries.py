"""SQL of the key pool."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from devicefactory.devices.queries import KEYS_GENERATED, advance_counter
from devicefactory.keys.crypto import SealedKeyPair
from devicefactory.keys.models import PoolKey


def pool_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PoolKey)) or 0


def keys_made_since(session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(PoolKey).where(PoolKey.created_at >= since)) or 0


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
