"""ORM classes of the accounts domain: OEMs, users, module models, tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from devicefactory.db import Base, UTCDateTime, utcnow

DEFAULT_RESERVATION_LIMIT = 100_000


class Oem(Base):
    __tablename__ = "oems"

    oem_id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    module_manufacturer: Mapped[bool] = mapped_column(Boolean, default=False)
    reservation_limit: Mapped[int] = mapped_column(Integer, default=DEFAULT_RESERVATION_LIMIT)
    factory_certificate: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lowercased: emails are unique case-insensitively.
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(40))
    oem_id: Mapped[str | None] = mapped_column(
        ForeignKey("oems.oem_id", ondelete="RESTRICT"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A deactivated user cannot sign in and its tokens stop working; kept for the records.
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    oem: Mapped[Oem | None] = relationship(lazy="raise")


class ModuleModel(Base):
    """A module model such as AY001MTP1 (the seed's "model")."""

    __tablename__ = "module_models"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuthToken(Base):
    """One sign-in: hashes of its access and refresh tokens, never the tokens."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    access_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInFailures(Base):
    """Failed sign-ins in a row for one email, known or not, and its lock (§5, §11).

    Kept by a hash of the lowercased email: an unknown email is locked exactly as a known
    one, and what people type in the email field (sometimes a password) is not stored.
    """

    __tablename__ = "sign_in_failures"

    email_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
