"""Sign-in and sign-out pages."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from fastapi import APIRouter, Request, Response

from devicefactory.accounts import service as accounts
from devicefactory.accounts.access import limit_sign_in_email
from devicefactory.dashboard import csrf
from devicefactory.dashboard.pages import DashboardRoute, redirect, render
from devicefactory.dashboard.session import (
    PREFIX,
    SESSION_COOKIE,
    SESSION_COOKIE_GRACE_SECONDS,
    SIGN_IN_COOKIE,
    SIGN_IN_COOKIE_SECONDS,
    CheckedForm,
    DashboardActor,
    SignInForm,
    clear_cookie,
    new_nonce,
    safe_next,
    session_token,
    set_cookie,
)
from devicefactory.errors import ServiceError, TooManyRequests, Unauthorized, ValidationFailed
from devicefactory.http.caller import client_address
from devicefactory.http.transaction import NowDep, ReadSessionsDep, SettingsDep, WriteSession

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

NOTICES = {
    "expired": "Your session has ended. Please sign in again.",
    "signed_out": "You have signed out.",
}


def _sign_in_page(
    request: Request, *, next_path: str, email: str = "", error: ServiceError | None = None
) -> Response:
    nonce = request.cookies.get(SIGN_IN_COOKIE) or new_nonce()
    notice = next((text for key, text in NOTICES.items() if key in request.query_params), None)
    response = render(
        request,
        "sign_in.html",
        {
            "sign_in_token": csrf.token(request, nonce, purpose="sign-in"),
            "next": next_path,
            "email": email,
            "error": error,
            "notice": None if error else notice,
        },
        status_code=error.status_code if error else 200,
    )
    if error is not None and error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    set_cookie(request, response, SIGN_IN_COOKIE, nonce, SIGN_IN_COOKIE_SECONDS)
    return response


@router.get("/sign_in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    return _sign_in_page(request, next_path=safe_next(next))


def limit_sign_in_address_now(request: Request) -> None:
    request.app.state.sign_in_limits.by_address.hit(client_address(request))


@router.post("/sign_in")
def sign_in(
    request: Request,
    form: SignInForm,
    read: ReadSessionsDep,
    session: WriteSession,
    settings: SettingsDep,
    now: NowDep,
) -> Response:
    email = str(form.get("email") or "").strip()
    next_path = safe_next(str(form.get("next") or ""))
    try:
        limit_sign_in_address_now(request)
        limit_sign_in_email(request, email)
        tokens = accounts.sign_in(
            read,
            session,
            email=email,
            password=str(form.get("password") or ""),
            now=now,
            token_ttl=settings.token_ttl,
            lockout=accounts.LockoutPolicy(
                settings.lockout_failures, timedelta(seconds=settings.lockout_seconds)
            ),
        )
    except (Unauthorized, TooManyRequests) as error:
        # The failed attempt the service recorded (towards the lockout) is committed.
        return _sign_in_page(request, next_path=next_path, email=email, error=error)
    response = redirect(next_path)
    max_age = tokens.expires_in + SESSION_COOKIE_GRACE_SECONDS
    set_cookie(request, response, SESSION_COOKIE, tokens.access_token, max_age)
    clear_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.post("/sign_out")
def sign_out(request: Request, _form: CheckedForm, session: WriteSession, now: NowDep) -> Response:
    token = session_token(request)
    if token:
        # Already expired or revoked: signing out is done either way.
        with contextlib.suppress(Unauthorized):
            accounts.sign_out(session, access_token=token, now=now)
    response = redirect(f"{PREFIX}/sign_in?signed_out=1")
    clear_cookie(request, response, SESSION_COOKIE)
    return response


def _password_page(request: Request, *, error: ServiceError | None = None) -> Response:
    changed = error is None and "changed" in request.query_params
    response = render(
        request,
        "password.html",
        {"tab": "password", "error": error, "changed": changed},
        status_code=error.status_code if error else 200,
    )
    if error is not None and error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@router.get("/password")
def password_page(request: Request, _actor: DashboardActor) -> Response:
    """The signed-in user's "Change password" form."""
    return _password_page(request)


@router.post("/password")
def change_password(
    request: Request,
    actor: DashboardActor,
    form: CheckedForm,
    read: ReadSessionsDep,
    session: WriteSession,
    settings: SettingsDep,
    now: NowDep,
) -> Response:
    """A wrong current password is a failed sign-in: limited, counted towards the lockout."""
    new_password = str(form.get("new_password") or "")
    try:
        limit_sign_in_address_now(request)
        limit_sign_in_email(request, actor.email)
        if new_password != str(form.get("confirm_password") or ""):
            raise ValidationFailed.of(["the new password and its confirmation differ"])
        accounts.change_password(
            read,
            session,
            actor,
            current_password=str(form.get("current_password") or ""),
            new_password=new_password,
            access_token=session_token(request) or "",
            now=now,
            lockout=accounts.LockoutPolicy(
                settings.lockout_failures, timedelta(seconds=settings.lockout_seconds)
            ),
        )
    except (Unauthorized, TooManyRequests, ValidationFailed) as error:
        # A failed attempt the service recorded (towards the lockout) is committed.
        return _password_page(request, error=error)
    return redirect(f"{PREFIX}/password?changed=1")
