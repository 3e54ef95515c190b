"""SQL of the accounts domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Select, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.db import fetch_rows
from devicefactory.tables.accounts import AuthToken, ModuleModel, Oem, SignInFailures, User


def get_oem(session: Session, oem_id: str) -> Oem | None:
    if not oem_id.isprintable() or len(oem_id) > 8:
        return None
    return session.get(Oem, oem_id)


def oem_name_taken(session: Session, name: str) -> bool:
    found = session.scalar(select(Oem.oem_id).where(func.lower(Oem.name) == name.lower()))
    return found is not None


def list_oems(session: Session) -> Sequence[Oem]:
    return session.scalars(select(Oem).order_by(Oem.created_at, Oem.oem_id)).all()


def get_user_by_email(session: Session, email: str, *, lock: bool = False) -> User | None:
    if not email.isprintable() or len(email) > 255:
        return None  # no stored email is like this (and PostgreSQL refuses NUL)
    query = select(User).where(User.email == email.strip().lower())
    return session.scalar(query.with_for_update() if lock else query)


def users_visible_to(actor: Actor) -> Select[User]:
    """The tenant wall for users: an OEM admin sees its own OEM's users only."""
    query = select(User).order_by(User.id)
    if not actor.is_platform_admin:
        query = query.where(User.oem_id == actor.oem_id)
    return query


def list_users(session: Session, actor: Actor) -> Sequence[User]:
    return session.scalars(users_visible_to(actor)).all()


def get_model(session: Session, name: str) -> ModuleModel | None:
    return session.get(ModuleModel, name)


def list_models(session: Session) -> Sequence[ModuleModel]:
    return session.scalars(select(ModuleModel).order_by(ModuleModel.name)).all()


def find_token_with_user(
    session: Session, *, access_hash: str | None = None, refresh_hash: str | None = None, lock: bool = False
) -> tuple[AuthToken, User, Oem | None] | None:
    query = (
        select(AuthToken, User, Oem)
        .join(User, User.id == AuthToken.user_id)
        .outerjoin(Oem, Oem.oem_id == User.oem_id)
    )
    if access_hash is not None:
        query = query.where(AuthToken.access_hash == access_hash)
    else:
        query = query.where(AuthToken.refresh_hash == refresh_hash)
    if lock:
        query = query.with_for_update(of=AuthToken)
    row = session.execute(query).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


Caller = tuple[datetime | None, datetime, int, str, str, str | None, datetime | None, bool | None]


_TOKENS, _USERS, _OEMS = (cast(Table, t.__table__) for t in (AuthToken, User, Oem))
# Built once, run on the connection: every request authenticates, and building the
# statement and the ORM's result handling cost more than the query itself.
_FIND_CALLER = (
    select(
        _TOKENS.c.revoked_at,
        _TOKENS.c.expires_at,
        _USERS.c.id,
        _USERS.c.email,
        _USERS.c.role,
        _USERS.c.oem_id,
        _USERS.c.deactivated_at,
        _OEMS.c.module_manufacturer,
    )
    .join_from(_TOKENS, _USERS, _USERS.c.id == _TOKENS.c.user_id)
    .outerjoin(_OEMS, _OEMS.c.oem_id == _USERS.c.oem_id)
    .where(_TOKENS.c.access_hash == bindparam("access_hash"))
)


def find_caller(connection: Connection, access_hash: str) -> Caller | None:
    """What authenticating a request needs of its token, user and OEM, in one narrow row
    (on the driver's cursor: every request runs it)."""
    rows = fetch_rows(connection, lambda: _FIND_CALLER, {"access_hash": access_hash}, key="find_caller")
    return cast(Caller, rows[0]) if rows else None


def get_oem_for_update(session: Session, oem_id: str) -> Oem | None:
    """The OEM row, locked: reservations of one OEM check its limit one at a time."""
    return session.scalars(select(Oem).where(Oem.oem_id == oem_id).with_for_update()).one_or_none()


def get_user(session: Session, user_id: int, *, lock: bool = False) -> User | None:
    if not lock:
        return session.get(User, user_id)
    query = select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def get_visible_user(
    session: Session, actor: Actor | None, user_id: int, *, lock: bool = False
) -> User | None:
    """One user behind the tenant wall (``actor`` None: the operator's CLI, every user)."""
    if actor is None:
        return get_user(session, user_id, lock=lock)
    query = users_visible_to(actor).where(User.id == user_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalar(query)


def locked_email_keys(session: Session, email_keys: Sequence[str], now: datetime) -> set[str]:
    """Which of these email keys are locked at ``now``."""
    found: set[str] = set()
    for start in range(0, len(email_keys), 500):  # bounded IN lists
        chunk = email_keys[start : start + 500]
        found.update(
            session.scalars(
                select(SignInFailures.email_key).where(
                    SignInFailures.email_key.in_(chunk), SignInFailures.locked_until > now
                )
            )
        )
    return found


def revoke_tokens(
    session: Session, user_id: int, now: datetime, *, keep_access_hash: str | None = None
) -> None:
    """Every live token of the user stops working, but the one it is acting with."""
    statement = (
        update(AuthToken)
        .where(AuthToken.user_id == user_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if keep_access_hash is not None:
        statement = statement.where(AuthToken.access_hash != keep_access_hash)
    session.execute(statement)


def sign_in_lock(session: Session, email_key: str) -> datetime | None:
    """Until when sign-in with this email is locked (None: not locked, or never was)."""
    found: datetime | None = session.scalar(
        select(SignInFailures.locked_until).where(SignInFailures.email_key == email_key)
    )
    return found


def count_failed_sign_in(session: Session, email_key: str) -> int:
    """One more failure in a row (atomically, so parallel guesses all count); the new count."""
    make_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        make_insert(SignInFailures)
        .values(email_key=email_key, failures=1)
        .on_conflict_do_update(index_elements=["email_key"], set_={"failures": SignInFailures.failures + 1})
        .returning(SignInFailures.failures)
    )
    failures: int = session.execute(statement).scalar_one()
    return failures


def lock_sign_in(session: Session, email_key: str, until: datetime) -> None:
    session.execute(
        update(SignInFailures)
        .where(SignInFailures.email_key == email_key)
        .values(failures=0, locked_until=until)
    )


def clear_sign_in_failures(session: Session, email_key: str) -> None:
    session.execute(delete(SignInFailures).where(SignInFailures.email_key == email_key))
