"""Sign-in, tokens and the admin API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request

from devicefactory.accounts import service
from devicefactory.accounts.access import ActorDep, SignInAddressLimit, limit_sign_in_email
from devicefactory.accounts.policy import require_platform_admin
from devicefactory.accounts.schemas import model_json, oem_json, tokens_json, user_json
from devicefactory.errors import MalformedRequest, ValidationFailed
from devicefactory.http.bodies import JsonBody, TextBody, section
from devicefactory.http.transaction import (
    NowDep,
    ReadSession,
    ReadSessionsDep,
    SettingsDep,
    TransactionalRoute,
    WriteSession,
)

users_router = APIRouter(prefix="/users", tags=["sign-in"], route_class=TransactionalRoute)
admin_router = APIRouter(prefix="/devicefactory/v1/admin", tags=["admin"], route_class=TransactionalRoute)


@users_router.post("/sign_in")
def sign_in(
    _limited: SignInAddressLimit,
    body: JsonBody,
    request: Request,
    read: ReadSessionsDep,
    session: WriteSession,
    settings: SettingsDep,
    now: NowDep,
) -> dict[str, Any]:
    """Sign in with email and password (`/users/sign_in.json`); limited per address and email."""
    user = section(body, "user")
    email, password = _text(user, "email"), _text(user, "password")
    limit_sign_in_email(request, email)
    tokens = service.sign_in(
        read,
        session,
        email=email,
        password=password,
        now=now,
        token_ttl=settings.token_ttl,
        lockout=service.LockoutPolicy(settings.lockout_failures, _seconds(settings.lockout_seconds)),
    )
    return tokens_json(tokens)


@users_router.post("/refresh_token")
def refresh_token(
    body: JsonBody, session: WriteSession, settings: SettingsDep, now: NowDep
) -> dict[str, Any]:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    user = section(body, "user")
    tokens = service.refresh_tokens(
        session, refresh_token=_text(user, "refresh_token"), now=now, token_ttl=settings.token_ttl
    )
    return tokens_json(tokens)


@users_router.post("/sign_out")
def sign_out(body: JsonBody, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Revoke an access token."""
    service.sign_out(session, access_token=_text(section(body, "user"), "access_token"), now=now)
    return {}


@admin_router.post("/oems", status_code=201)
def create_oem(body: JsonBody, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Create an OEM (Ayla::Admin)."""
    require_platform_admin(actor)
    fields = _unwrap(body, "oem")
    oem = service.create_oem(
        session,
        name=_text(fields, "name"),
        module_manufacturer=_flag(fields, "module_manufacturer"),
        certificate_pem=_optional_text(fields, "certificate"),
        reservation_limit=_integer(fields, "reservation_limit", default=100_000),
    )
    return {"oem": oem_json(oem)}


@admin_router.get("/oems")
def list_oems(actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """Every OEM (Ayla::Admin)."""
    return {"oems": [oem_json(oem) for oem in service.list_oems(session, actor)]}


@admin_router.put("/oems/{oem_id}/certificate")
def put_certificate(oem_id: str, pem: TextBody, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Replace an OEM's factory certificate (PEM body; Ayla::Admin)."""
    oem = service.set_factory_certificate(session, actor, oem_id=oem_id, pem=pem)
    return {"oem": oem_json(oem)}


@admin_router.post("/users", status_code=201)
def create_user(body: JsonBody, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Create a user (Ayla::Admin; OEM::Admin within its own OEM)."""
    fields = _unwrap(body, "user")
    user = service.create_user(
        session,
        actor,
        email=_text(fields, "email"),
        password=_text(fields, "password"),
        role=_text(fields, "role"),
        oem_id=_optional_text(fields, "oem_id"),
    )
    return {"user": user_json(user)}


@admin_router.get("/users")
def list_users(actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """The users the caller manages."""
    return {"users": [user_json(user) for user in service.list_users(session, actor)]}


@admin_router.post("/models", status_code=201)
def create_model(body: JsonBody, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Create a module model (Ayla::Admin)."""
    require_platform_admin(actor)
    fields = _unwrap(body, "model")
    model = service.create_model(
        session,
        name=_text(fields, "name"),
        kind=_text(fields, "kind"),
        description=_optional_text(fields, "description") or "",
    )
    return {"model": model_json(model)}


@admin_router.get("/models")
def list_models(_actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """Every module model (any signed-in user: the dashboard lists them)."""
    return {"models": [model_json(model) for model in service.list_models(session)]}


def _unwrap(body: dict[str, Any], key: str) -> dict[str, Any]:
    """Accept both ``{"user": {...}}`` and the flat ``{...}``."""
    return section(body, key) if key in body else body


def _text(fields: dict[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None or value == "":
        raise ValidationFailed.of([f"{key} is required"])
    if not isinstance(value, str):
        raise MalformedRequest(f"{key} must be a string")
    return value


def _optional_text(fields: dict[str, Any], key: str) -> str | None:
    return None if fields.get(key) in (None, "") else _text(fields, key)


def _flag(fields: dict[str, Any], key: str) -> bool:
    value = fields.get(key, False)
    if not isinstance(value, bool):
        raise ValidationFailed.of([f"{key} must be true or false"])
    return value


def _integer(fields: dict[str, Any], key: str, *, default: int) -> int:
    value = fields.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ValidationFailed.of([f"{key} must be an integer from 0 to 2147483647"])
    return value


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)
