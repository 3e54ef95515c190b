"""ORM class of idempotent requests (SPEC §13)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from devicefactory.db import Base, UTCDateTime


class IdempotentRequest(Base):
    """A POST sent with an ``Idempotency-Key``, and once answered, its first answer.

    ``status`` is null while the first request is at work; the row is written when the
    request starts (so a parallel twin waits for it) and its answer is stored in the same
    transaction as the change it made (http.transaction), so a crash can never leave a
    change without its answer or an answer without its change.
    """

    __tablename__ = "idempotent_requests"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    headers: Mapped[str | None] = mapped_column(Text, default=None)  # JSON object
    body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
