"""Sign-in, tokens and the admin API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request

from devicefactory.accounts import bodies, service
from devicefactory.accounts.access import ActorDep, SignInAddressLimit, limit_sign_in_email
from devicefactory.accounts.policy import ModelKind, Role, require_platform_admin
from devicefactory.accounts.schemas import model_json, oem_json, tokens_json, user_json, user_state_json
from devicefactory.errors import (
    AccountLocked,
    Conflict,
    Forbidden,
    InvalidCredentials,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from devicefactory.http.bodies import JsonBody, TextBody, section
from devicefactory.http.caller import bearer_token
from devicefactory.http.openapi import afs_errors, request_body, text_request_body
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

# What every JSON body may answer before a field is read (SPEC §4, §11).
_BODY_ERRORS: tuple[ServiceError, ...] = (
    PayloadTooLarge(1_048_576),
    MalformedRequest("malformed JSON: the request body is not valid JSON"),
    MalformedRequest("the request body must be a JSON object"),
)


@users_router.post(
    "/sign_in",
    response_model=None,
    responses={
        200: {"model": bodies.Tokens, "description": "A new access and refresh token"},
        **afs_errors(
            InvalidCredentials(),
            AccountLocked(30),
            *_BODY_ERRORS,
            MalformedRequest("'user' must be a JSON object"),
            ValidationFailed.of(["email is required"]),
            TooManyRequests("sign-ins from your address", 60),
            TooManyRequests("sign-ins with this email", 60),
        ),
    },
    openapi_extra=request_body(bodies.SignInRequest),
)
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


@users_router.post(
    "/refresh_token",
    response_model=None,
    responses={
        200: {"model": bodies.Tokens, "description": "A new pair; the old refresh token stops working"},
        **afs_errors(
            Unauthorized("Unknown, expired or already used refresh token"),
            *_BODY_ERRORS,
            MalformedRequest("'user' must be a JSON object"),
            ValidationFailed.of(["refresh_token is required"]),
        ),
    },
    openapi_extra=request_body(bodies.RefreshTokenRequest),
)
def refresh_token(
    body: JsonBody, session: WriteSession, settings: SettingsDep, now: NowDep
) -> dict[str, Any]:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    user = section(body, "user")
    tokens = service.refresh_tokens(
        session, refresh_token=_text(user, "refresh_token"), now=now, token_ttl=settings.token_ttl
    )
    return tokens_json(tokens)


@users_router.post(
    "/sign_out",
    response_model=None,
    responses={
        200: {"model": bodies.SignedOut, "description": "The token stopped working"},
        **afs_errors(
            Unauthorized(),
            *_BODY_ERRORS,
            MalformedRequest("'user' must be a JSON object"),
            ValidationFailed.of(["access_token is required"]),
        ),
    },
    openapi_extra=request_body(bodies.SignOutRequest),
)
def sign_out(body: JsonBody, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Revoke an access token."""
    service.sign_out(session, access_token=_text(section(body, "user"), "access_token"), now=now)
    return {}


@users_router.post(
    "/password",
    response_model=None,
    responses={
        200: {
            "model": bodies.PasswordChanged,
            "description": "Changed; the caller's other tokens stopped working",
        },
        **afs_errors(
            Unauthorized(),
            InvalidCredentials(),
            AccountLocked(30),
            *_BODY_ERRORS,
            MalformedRequest("'user' must be a JSON object"),
            ValidationFailed.of(["current_password is required"]),
            ValidationFailed.of(["password must be 8 to 1024 characters"]),
            TooManyRequests("sign-ins from your address", 60),
            TooManyRequests("sign-ins with this email", 60),
        ),
    },
    openapi_extra=request_body(bodies.PasswordChange),
)
def change_password(
    _limited: SignInAddressLimit,
    body: JsonBody,
    request: Request,
    actor: ActorDep,
    read: ReadSessionsDep,
    session: WriteSession,
    settings: SettingsDep,
    now: NowDep,
) -> dict[str, Any]:
    """Change the caller's own password; a wrong current password is a failed sign-in
    (401, counted by the sign-in limits and the lockout)."""
    user = section(body, "user")
    current, new = _text(user, "current_password"), _text(user, "new_password")
    limit_sign_in_email(request, actor.email)
    service.change_password(
        read,
        session,
        actor,
        current_password=current,
        new_password=new,
        access_token=bearer_token(request),
        now=now,
        lockout=service.LockoutPolicy(settings.lockout_failures, _seconds(settings.lockout_seconds)),
    )
    return {}


@admin_router.post(
    "/oems",
    status_code=201,
    response_model=None,
    responses={
        201: {"model": bodies.OemEnvelope, "description": "The OEM created, with its new oem_id"},
        **afs_errors(
            Unauthorized(),
            Forbidden(),
            Conflict("An OEM named Acme Modules already exists"),
            *_BODY_ERRORS,
            ValidationFailed.of(["name is required"]),
            ValidationFailed.of(["module_manufacturer must be true or false"]),
            ValidationFailed.of(["reservation_limit must be an integer from 0 to 2147483647"]),
            ValidationFailed.of(
                ["certificate: not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block"]
            ),
        ),
    },
    openapi_extra=request_body(bodies.OemCreate, bodies.OemFields),
)
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


@admin_router.get(
    "/oems",
    response_model=None,
    responses={200: {"model": bodies.OemList}, **afs_errors(Unauthorized(), Forbidden())},
)
def list_oems(actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """Every OEM (Ayla::Admin)."""
    return {"oems": [oem_json(oem) for oem in service.list_oems(session, actor)]}


@admin_router.put(
    "/oems/{oem_id}/certificate",
    response_model=None,
    responses={
        200: {"model": bodies.OemEnvelope, "description": "The OEM, now with a factory certificate"},
        **afs_errors(
            Unauthorized(),
            Forbidden(),
            NotFound("OEM 0dfc7900 not found"),
            PayloadTooLarge(1_048_576),
            MalformedRequest("the request body must be UTF-8 text"),
            ValidationFailed.of(
                ["certificate: not a PEM certificate: expected a '-----BEGIN CERTIFICATE-----' block"]
            ),
        ),
    },
    openapi_extra=text_request_body(
        "The OEM's factory certificate (X.509 PEM); reserve bundles are encrypted to it",
        bodies.PEM_CERTIFICATE,
        ("application/x-pem-file", "text/plain"),
    ),
)
def put_certificate(oem_id: str, pem: TextBody, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Replace an OEM's factory certificate (PEM body; Ayla::Admin)."""
    oem = service.set_factory_certificate(session, actor, oem_id=oem_id, pem=pem)
    return {"oem": oem_json(oem)}


@admin_router.post(
    "/users",
    status_code=201,
    response_model=None,
    responses={
        201: {"model": bodies.UserEnvelope, "description": "The user created"},
        **afs_errors(
            Unauthorized(),
            Forbidden(),
            Forbidden("Forbidden: you may not grant this role"),
            NotFound("OEM 0dfc7900 not found"),
            Conflict("A user with email operator@example.com already exists"),
            *_BODY_ERRORS,
            ValidationFailed.of(["email is required"]),
            ValidationFailed.of([f"role must be one of {', '.join(Role)}"]),
            ValidationFailed.of(["operator@ is not a valid email address"]),
            ValidationFailed.of(["password must be 8 to 1024 characters"]),
            ValidationFailed.of([f"a {Role.OEM_ADMIN} needs an OEM (oem_id)"]),
        ),
    },
    openapi_extra=request_body(bodies.UserCreate, bodies.UserFields),
)
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


@admin_router.get(
    "/users",
    response_model=None,
    responses={200: {"model": bodies.UserList}, **afs_errors(Unauthorized(), Forbidden())},
)
def list_users(actor: ActorDep, session: ReadSession, now: NowDep) -> dict[str, Any]:
    """The users the caller manages, with whether each is deactivated or locked out."""
    return {"users": [user_state_json(state) for state in service.list_user_states(session, actor, now=now)]}


# What every route on one user may answer: the caller's role, and a user beyond its reach.
_USER_ERRORS: tuple[ServiceError, ...] = (Unauthorized(), Forbidden(), NotFound("User 42 not found"))


@admin_router.post(
    "/users/{user_id}/unlock",
    response_model=None,
    responses={
        200: {"model": bodies.UserEnvelope, "description": "The user, no longer locked out"},
        **afs_errors(*_USER_ERRORS),
    },
)
def unlock_user(user_id: str, actor: ActorDep, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Lift a user's sign-in lockout at once (Ayla::Admin; OEM::Admin within its own OEM)."""
    state = service.unlock_user(session, actor, user_id=_user_id(user_id), now=now)
    return {"user": user_state_json(state)}


@admin_router.post(
    "/users/{user_id}/password",
    response_model=None,
    responses={
        200: {"model": bodies.UserEnvelope, "description": "The user; its tokens stopped working"},
        **afs_errors(
            *_USER_ERRORS,
            *_BODY_ERRORS,
            ValidationFailed.of(["password is required"]),
            ValidationFailed.of(["password must be 8 to 1024 characters"]),
        ),
    },
    openapi_extra=request_body(bodies.PasswordSet, bodies.PasswordFields),
)
def set_password(
    user_id: str, body: JsonBody, request: Request, actor: ActorDep, session: WriteSession, now: NowDep
) -> dict[str, Any]:
    """Set a user's password (rules as at creation); every token of the user stops working."""
    state = service.set_password(
        session,
        actor,
        user_id=_user_id(user_id),
        password=_text(_unwrap(body, "user"), "password"),
        now=now,
        keep_access_token=bearer_token(request),
    )
    return {"user": user_state_json(state)}


@admin_router.post(
    "/users/{user_id}/deactivate",
    response_model=None,
    responses={
        200: {
            "model": bodies.UserEnvelope,
            "description": "The user, deactivated; its tokens stopped working",
        },
        **afs_errors(*_USER_ERRORS, Forbidden("Forbidden: you may not deactivate your own account")),
    },
)
def deactivate_user(user_id: str, actor: ActorDep, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Deactivate a user: it cannot sign in and its tokens stop working."""
    state = service.deactivate_user(session, actor, user_id=_user_id(user_id), now=now)
    return {"user": user_state_json(state)}


@admin_router.post(
    "/users/{user_id}/reactivate",
    response_model=None,
    responses={
        200: {"model": bodies.UserEnvelope, "description": "The user, who may sign in again"},
        **afs_errors(*_USER_ERRORS),
    },
)
def reactivate_user(user_id: str, actor: ActorDep, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Reactivate a deactivated user (its old tokens stay revoked)."""
    state = service.reactivate_user(session, actor, user_id=_user_id(user_id), now=now)
    return {"user": user_state_json(state)}


@admin_router.post(
    "/models",
    status_code=201,
    response_model=None,
    responses={
        201: {"model": bodies.ModelEnvelope, "description": "The module model created"},
        **afs_errors(
            Unauthorized(),
            Forbidden(),
            Conflict("A model named AY001MTP1 already exists"),
            *_BODY_ERRORS,
            ValidationFailed.of(["name is required"]),
            ValidationFailed.of(["AY 001 is not a valid model name (letters, digits, _ . -)"]),
            ValidationFailed.of([f"kind must be one of {', '.join(ModelKind)}"]),
        ),
    },
    openapi_extra=request_body(bodies.ModelCreate, bodies.ModelFields),
)
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


@admin_router.get(
    "/models",
    response_model=None,
    responses={200: {"model": bodies.ModelList}, **afs_errors(Unauthorized())},
)
def list_models(_actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """Every module model (any signed-in user: the dashboard lists them)."""
    return {"models": [model_json(model) for model in service.list_models(session)]}


def _user_id(text: str) -> int:
    """A user id of the path; anything else is a user that does not exist."""
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        raise NotFound(f"User {text} not found")
    return int(text)


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
