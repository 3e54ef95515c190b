"""The dashboard session: a cookie holding the access token that sign_in issued.

The token is checked with ``accounts.service.authenticate`` on every request, so a
dashboard session expires and is revoked exactly like an API token.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, cast

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from devicefactory.accounts.access import caller_of
from devicefactory.accounts.policy import Actor
from devicefactory.dashboard import csrf
from devicefactory.errors import Unauthorized
from devicefactory.http.transaction import InEndpointThread, get_now

PREFIX = "/dashboard"
SESSION_COOKIE = "df_session"
SIGN_IN_COOKIE = "df_sign_in"
SIGN_IN_COOKIE_SECONDS = 3600
# The session cookie outlives its token by a day, so that a visit after the session ended
# is told so ("Your session has ended"), while a first visit gets the plain sign-in page.
# The token is checked on every request: the longer cookie does not lengthen the session.
SESSION_COOKIE_GRACE_SECONDS = 86400
MAX_FORM_FIELDS = 64


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def _is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    """HttpOnly, SameSite=Lax, limited to the dashboard, Secure when the request is HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=_is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="lax", secure=_is_https(request))


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site, never another host."""
    if not value or not value.startswith(PREFIX) or value.startswith("//") or "\\" in value:
        return PREFIX
    if value.startswith(f"{PREFIX}/sign_"):
        return PREFIX
    return value


async def get_dashboard_actor(request: Request, now: Annotated[datetime, Depends(get_now)]) -> Actor:
    """The signed-in user; Unauthorized (a redirect to the sign-in page) otherwise.

    Authenticated through the reader, as the API does, in the endpoint's thread
    (``InEndpointThread``): a POST's write transaction (on SQLite, the single writer's
    lock) is not taken before the form has been read.
    """
    token = session_token(request)
    if token is None:
        raise Unauthorized("Please sign in")

    def authenticate() -> Actor:
        actor = caller_of(request, token, now)
        request.state.dashboard_token = token
        return actor

    return cast(Actor, InEndpointThread(authenticate))


async def checked_form(request: Request) -> FormData:
    """The posted form, after its CSRF token was checked against the session cookie."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    csrf.check(request, form.get(csrf.FIELD), session_token(request))
    return form


async def sign_in_form(request: Request) -> FormData:
    """The sign-in form, checked against the nonce cookie set by the sign-in page."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    nonce = request.cookies.get(SIGN_IN_COOKIE)
    csrf.check(request, form.get(csrf.FIELD), nonce, purpose="sign-in")
    return form


DashboardActor = Annotated[Actor, Depends(get_dashboard_actor)]
CheckedForm = Annotated[FormData, Depends(checked_form)]
SignInForm = Annotated[FormData, Depends(sign_in_form)]
