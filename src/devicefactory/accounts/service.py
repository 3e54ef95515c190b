"""Accounts: OEMs, users, module models, sign-in and tokens."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import queries
from devicefactory.accounts.policy import (
    Actor,
    ModelKind,
    Role,
    may_deactivate,
    may_manage_user,
    require,
    require_platform_admin,
)
from devicefactory.accounts.secrets import hash_password, new_token, token_hash, verify_password
from devicefactory.errors import (
    AccountLocked,
    Conflict,
    InvalidCredentials,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from devicefactory.keys.crypto import InvalidCertificateError, load_factory_certificate
from devicefactory.tables.accounts import (
    DEFAULT_RESERVATION_LIMIT,
    AuthToken,
    ModuleModel,
    Oem,
    User,
)

REFRESH_TTL = timedelta(days=30)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD_LENGTH = 8


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    role: str


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    failures: int = 5
    duration: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class UserState:
    """A user as the admin pages show it: deactivated, and locked out of sign-in now."""

    user: User
    locked: bool

    @property
    def deactivated(self) -> bool:
        return self.user.deactivated_at is not None


# --- OEMs, users, models -------------------------------------------------------------


def create_oem(
    session: Session,
    *,
    name: str,
    module_manufacturer: bool = False,
    certificate_pem: str | None = None,
    reservation_limit: int = DEFAULT_RESERVATION_LIMIT,
) -> Oem:
    name = _required_text("name", name)
    if queries.oem_name_taken(session, name):
        raise Conflict(f"An OEM named {name} already exists")
    if reservation_limit < 1:
        raise ValidationFailed.of(["reservation_limit must be a positive integer"])
    oem = Oem(
        oem_id=_new_oem_id(session),
        name=name,
        module_manufacturer=module_manufacturer,
        reservation_limit=reservation_limit,
        factory_certificate=_checked_certificate(certificate_pem) if certificate_pem else None,
    )
    session.add(oem)
    session.flush()
    return oem


def set_factory_certificate(session: Session, actor: Actor, *, oem_id: str, pem: str) -> Oem:
    require_platform_admin(actor)
    oem = _existing_oem(session, oem_id)
    oem.factory_certificate = _checked_certificate(pem)
    session.flush()
    return oem


def create_user(
    session: Session,
    actor: Actor | None,
    *,
    email: str,
    password: str,
    role: str,
    oem_id: str | None,
) -> User:
    """Create a user; ``actor`` None means the operator's own CLI on the server."""
    parsed_role = _parse_role(role)
    if actor is not None:
        require(actor.may_manage_users)
        require(actor.may_assign_role(parsed_role), "Forbidden: you may not grant this role")
        if not actor.is_platform_admin:
            if oem_id not in (None, actor.oem_id):
                # Another OEM's id reads as unknown: no existence leak.
                raise NotFound(f"OEM {oem_id} not found")
            oem_id = actor.oem_id
    email = _checked_email(email)
    _check_password(password)
    _check_role_oem(session, parsed_role, oem_id)
    if queries.get_user_by_email(session, email) is not None:
        raise Conflict(f"A user with email {email} already exists")
    user = User(email=email, password_hash=hash_password(password), role=parsed_role.value, oem_id=oem_id)
    session.add(user)
    session.flush()
    return user


def list_users(session: Session, actor: Actor) -> Sequence[User]:
    require(actor.may_manage_users)
    return queries.list_users(session, actor)


def list_user_states(session: Session, actor: Actor, *, now: datetime) -> list[UserState]:
    """The users the caller manages, each with whether it is locked out right now."""
    users = list_users(session, actor)
    locked = queries.locked_email_keys(session, [email_key(user.email) for user in users], now)
    return [UserState(user, email_key(user.email) in locked) for user in users]


def user_state(session: Session, user: User, *, now: datetime) -> UserState:
    key = email_key(user.email)
    return UserState(user, key in queries.locked_email_keys(session, [key], now))


# --- account recovery -------------------------------------------------------------------
#
# ``actor`` None is the operator's CLI on the server: every user is within its reach.


def user_id_for_email(session: Session, email: str) -> int:
    """The id of the user with this email (the CLI names users by email)."""
    user = queries.get_user_by_email(session, email) if isinstance(email, str) else None
    if user is None:
        raise NotFound(f"No user with email {email}")
    return user.id


def unlock_user(session: Session, actor: Actor | None, *, user_id: int, now: datetime) -> UserState:
    """Lift the sign-in lockout (and the failures counted towards it) at once."""
    user = _managed_user(session, actor, user_id)
    queries.clear_sign_in_failures(session, email_key(user.email))
    session.flush()
    return UserState(user, locked=False)


def set_password(
    session: Session,
    actor: Actor | None,
    *,
    user_id: int,
    password: str,
    now: datetime,
    keep_access_token: str | None = None,
) -> UserState:
    """Give a user a new password; every token of that user stops working but
    ``keep_access_token`` (the caller's own, when admins set their own password)."""
    if actor is not None:
        require(actor.may_manage_users)
    _check_password(password)
    # Hashed before the write session is first used: no write lock is held meanwhile (§11).
    password_hash = hash_password(password)
    user = _managed_user(session, actor, user_id, lock=True)
    _store_password(session, user, password_hash, now=now, keep_access_token=keep_access_token)
    return user_state(session, user, now=now)


def deactivate_user(session: Session, actor: Actor | None, *, user_id: int, now: datetime) -> UserState:
    """The user can no longer sign in, and every token it holds stops working."""
    user = _managed_user(session, actor, user_id, lock=True)
    if actor is not None:
        require(may_deactivate(actor, user.id), "Forbidden: you may not deactivate your own account")
    if user.deactivated_at is None:
        user.deactivated_at = now
    queries.revoke_tokens(session, user.id, now)
    session.flush()
    return user_state(session, user, now=now)


def reactivate_user(session: Session, actor: Actor | None, *, user_id: int, now: datetime) -> UserState:
    """The user may sign in again (its old tokens stay revoked)."""
    user = _managed_user(session, actor, user_id, lock=True)
    user.deactivated_at = None
    session.flush()
    return user_state(session, user, now=now)


def change_password(
    read: sessionmaker[Session],
    session: Session,
    actor: Actor,
    *,
    current_password: str,
    new_password: str,
    access_token: str,
    now: datetime,
    lockout: LockoutPolicy = LockoutPolicy(),
) -> None:
    """A signed-in user's own new password; a wrong current one is a failed sign-in.

    It counts towards the lockout as a failed sign-in does, so a stolen session cannot
    guess the password any faster; the caller's other tokens stop working.
    """
    _check_password(new_password)
    key = email_key(actor.email)
    with read() as reader:
        user = queries.get_user(reader, actor.user_id)
        locked_until = queries.sign_in_lock(reader, key)
    _refuse_when_locked(locked_until, now)
    if user is None or not verify_password(user.password_hash, current_password):
        _count_failure(session, key, now=now, lockout=lockout)
        raise InvalidCredentials().recorded()
    password_hash = hash_password(new_password)
    current = queries.get_user(session, actor.user_id, lock=True)
    if current is None or current.password_hash != user.password_hash:
        raise InvalidCredentials()  # changed meanwhile by someone else: try again
    _store_password(session, current, password_hash, now=now, keep_access_token=access_token)
    queries.clear_sign_in_failures(session, key)


def list_oems(session: Session, actor: Actor) -> Sequence[Oem]:
    require_platform_admin(actor)
    return queries.list_oems(session)


def create_model(session: Session, *, name: str, kind: str, description: str = "") -> ModuleModel:
    if not _MODEL_NAME.match(name or ""):
        raise ValidationFailed.of([f"{name} is not a valid model name (letters, digits, _ . -)"])
    try:
        parsed_kind = ModelKind(kind)
    except ValueError:
        raise ValidationFailed.of([f"kind must be one of {', '.join(ModelKind)}"]) from None
    if queries.get_model(session, name) is not None:
        raise Conflict(f"A model named {name} already exists")
    model = ModuleModel(name=name, kind=parsed_kind.value, description=description[:255])
    session.add(model)
    session.flush()
    return model


def list_models(session: Session) -> Sequence[ModuleModel]:
    return queries.list_models(session)


# --- sign-in and tokens -----------------------------------------------------------------


def sign_in(
    read: sessionmaker[Session],
    session: Session,
    *,
    email: str,
    password: str,
    now: datetime,
    token_ttl: int,
    lockout: LockoutPolicy = LockoutPolicy(),
) -> IssuedTokens:
    """Check the password, then record the outcome.

    The checks read through ``read`` and the slow password hash runs before ``session``
    is first used, so no write lock (SQLite's single writer) is held while hashing. An
    unknown email costs and answers exactly as a known one, lock included (§11).
    """
    key = email_key(email)
    with read() as reader:
        user = queries.get_user_by_email(reader, email) if isinstance(email, str) else None
        locked_until = queries.sign_in_lock(reader, key)
    _refuse_when_locked(locked_until, now)
    # A deactivated user is answered as a wrong password, and counted as one.
    if not verify_password(user.password_hash if user else None, password) or user is None:
        _count_failure(session, key, now=now, lockout=lockout)
        raise InvalidCredentials().recorded()
    current = queries.get_user(session, user.id, lock=True)
    if current is None or current.deactivated_at is not None or current.password_hash != user.password_hash:
        # Deactivated, or its password changed while this one was being checked.
        _count_failure(session, key, now=now, lockout=lockout)
        raise InvalidCredentials().recorded()
    queries.clear_sign_in_failures(session, key)
    return _issue_tokens(session, current, now=now, token_ttl=token_ttl)


def email_key(email: object) -> str:
    """What failures are counted under: a hash of the email as users are found by it."""
    text = email.strip().lower() if isinstance(email, str) else repr(email)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def refresh_tokens(session: Session, *, refresh_token: str, now: datetime, token_ttl: int) -> IssuedTokens:
    # Locked: two concurrent refreshes with one token must not both succeed.
    found = queries.find_token_with_user(session, refresh_hash=token_hash(refresh_token), lock=True)
    if found is None or found[0].revoked_at is not None or found[0].refresh_expires_at <= now:
        raise Unauthorized("Unknown, expired or already used refresh token")
    token, user, _ = found
    if user.deactivated_at is not None:
        raise Unauthorized("Unknown, expired or already used refresh token")
    token.revoked_at = now  # rotation: the old pair stops working
    return _issue_tokens(session, user, now=now, token_ttl=token_ttl)


def sign_out(session: Session, *, access_token: str, now: datetime) -> None:
    found = queries.find_token_with_user(session, access_hash=token_hash(access_token))
    if found is None or found[0].revoked_at is not None:
        raise Unauthorized()
    found[0].revoked_at = now
    session.flush()


def authenticate(connection: Connection, *, access_token: str, now: datetime) -> Actor:
    """The caller of a bearer token: one narrow read on a bare connection (every request
    runs it; a session would cost more than the query)."""
    found = queries.find_caller(connection, token_hash(access_token))
    if found is None:
        raise Unauthorized()
    revoked_at, expires_at, user_id, email, role, oem_id, deactivated_at, module_manufacturer = found
    if revoked_at is not None or expires_at <= now or deactivated_at is not None:
        raise Unauthorized()
    return Actor(
        user_id=user_id,
        email=email,
        role=Role(role),
        oem_id=oem_id,
        module_manufacturer=bool(module_manufacturer),
    )


def actor_for(user: User, oem: Oem | None) -> Actor:
    return Actor(
        user_id=user.id,
        email=user.email,
        role=Role(user.role),
        oem_id=user.oem_id,
        module_manufacturer=bool(oem and oem.module_manufacturer),
    )


# --- helpers ----------------------------------------------------------------------------


def _refuse_when_locked(locked_until: datetime | None, now: datetime) -> None:
    """AFS-401 with the minutes left: keyed by the email's hash, so alike for every email."""
    if locked_until is not None and locked_until > now:
        raise AccountLocked(math.ceil((locked_until - now).total_seconds() / 60))


def _count_failure(session: Session, key: str, *, now: datetime, lockout: LockoutPolicy) -> None:
    if queries.count_failed_sign_in(session, key) >= lockout.failures:
        queries.lock_sign_in(session, key, now + lockout.duration)


def _managed_user(session: Session, actor: Actor | None, user_id: int, *, lock: bool = False) -> User:
    """The user, if the caller manages it: 403 for a role that manages no users, 404 for a
    user beyond the caller's reach, exactly as for an id that does not exist (§3)."""
    if actor is not None:
        require(actor.may_manage_users)
    user = queries.get_visible_user(session, actor, user_id, lock=lock)
    if user is None or (actor is not None and not may_manage_user(actor, user.oem_id)):
        raise NotFound(f"User {user_id} not found")
    return user


def _store_password(
    session: Session, user: User, password_hash: str, *, now: datetime, keep_access_token: str | None
) -> None:
    user.password_hash = password_hash
    user.password_changed_at = now
    keep = token_hash(keep_access_token) if keep_access_token else None
    queries.revoke_tokens(session, user.id, now, keep_access_hash=keep)
    session.flush()


def _issue_tokens(session: Session, user: User, *, now: datetime, token_ttl: int) -> IssuedTokens:
    access, refresh = new_token(), new_token()
    session.add(
        AuthToken(
            user_id=user.id,
            access_hash=token_hash(access),
            refresh_hash=token_hash(refresh),
            expires_at=now + timedelta(seconds=token_ttl),
            refresh_expires_at=now + REFRESH_TTL,
            created_at=now,
        )
    )
    session.flush()
    return IssuedTokens(access_token=access, refresh_token=refresh, expires_in=token_ttl, role=user.role)


def _new_oem_id(session: Session) -> str:
    while True:
        candidate = secrets.token_hex(4)
        if queries.get_oem(session, candidate) is None:
            return candidate


def _existing_oem(session: Session, oem_id: str) -> Oem:
    oem = queries.get_oem(session, oem_id)
    if oem is None:
        raise NotFound(f"OEM {oem_id} not found")
    return oem


def _checked_certificate(pem: str) -> str:
    try:
        load_factory_certificate(pem.encode())
    except InvalidCertificateError as error:
        raise ValidationFailed.of([f"certificate: {error}"]) from None
    return pem.strip() + "\n"


def _parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationFailed.of([f"role must be one of {', '.join(Role)}"]) from None


def _check_role_oem(session: Session, role: Role, oem_id: str | None) -> None:
    if role is Role.AYLA_ADMIN:
        if oem_id is not None:
            raise ValidationFailed.of(["an Ayla::Admin belongs to no OEM"])
        return
    if oem_id is None:
        raise ValidationFailed.of([f"a {role} needs an OEM (oem_id)"])
    _existing_oem(session, oem_id)


def _checked_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 255 or not _EMAIL.match(email):
        raise ValidationFailed.of([f"{email or 'email'} is not a valid email address"])
    return email


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH or len(password) > 1024:
        raise ValidationFailed.of([f"password must be {MIN_PASSWORD_LENGTH} to 1024 characters"])


def _required_text(field: str, value: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 255 or any(ord(c) < 32 for c in value):
        raise ValidationFailed.of([f"{field} must be 1 to 255 printable characters"])
    return value
