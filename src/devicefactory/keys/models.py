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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class FillerReport(Base):
    """A running pool filler and the rate it makes keys at: their sum is the pool's fill
    rate, from which an AFS-605 answer says when to retry."""

    __tablename__ = "key_pool_fillers"

    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    keys_per_second: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
