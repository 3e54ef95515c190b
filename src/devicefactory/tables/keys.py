"""ORM classes of the key pool."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from devicefactory.db import Base, UTCDateTime, utcnow


class PoolKey(Base):
    """A key pair made ahead of demand; its private half is sealed with the master key."""

    __tablename__ = "key_pool"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FillerReport(Base):
    """A running pool filler and the rate it makes keys at: their sum is the pool's fill
    rate, from which an AFS-605 answer says when to retry."""

    __tablename__ = "key_pool_fillers"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    keys_per_second: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MasterKeyRotation(Base):
    """A rotation of the master key (``devicefactory master-key rotate``).

    While it runs, ``wrapped_key`` holds the new key sealed with the old one, so that
    every running process (holding the old key) learns the new one: each then opens keys
    sealed with either and seals new ones with the new. It is emptied when every key is
    re-sealed; after that the new key rests nowhere but in its own file.
    """

    __tablename__ = "master_key_rotations"

    new_key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    old_key_id: Mapped[str] = mapped_column(String(16))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
