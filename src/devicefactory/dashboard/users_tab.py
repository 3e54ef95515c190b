"""The Users page: an admin's users with their state; unlock, deactivate, reactivate, set password."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor, may_deactivate
from devicefactory.dashboard import forms
from devicefactory.dashboard.pages import DashboardRoute, redirect, render
from devicefactory.dashboard.session import PREFIX, CheckedForm, DashboardActor, session_token
from devicefactory.errors import NotFound, ServiceError, ValidationFailed
from devicefactory.http.transaction import NowDep, ReadSession, WriteSession

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

# What the page says after each operation ({email}: the user's).
DONE = {
    "unlock": "{email} is unlocked and may sign in at once.",
    "deactivate": "{email} is deactivated: it cannot sign in, and its sessions and tokens have ended.",
    "reactivate": "{email} is active again and may sign in.",
    "password": "{email} has a new password; its sessions and tokens have ended.",
}
# The operations of the page's buttons, by the last part of their address.
OPERATIONS: dict[str, Callable[..., accounts.UserState]] = {
    "unlock": accounts.unlock_user,
    "deactivate": accounts.deactivate_user,
    "reactivate": accounts.reactivate_user,
}


def _users_page(
    request: Request, session: Session, actor: Actor, *, now: datetime, error: ServiceError | None = None
) -> Response:
    states = accounts.list_user_states(session, actor, now=now)
    done = request.query_params.get("done", "")
    done_id = forms.positive_int(request.query_params.get("user"))
    notice = next(
        (DONE[done].format(email=s.user.email) for s in states if s.user.id == done_id and done in DONE),
        None,
    )
    context = {
        "tab": "users",
        "users": states,
        "notice": None if error else notice,
        "error": error,
        "may_deactivate": lambda user: may_deactivate(actor, user.id),
        "done_id": done_id,
    }
    return render(request, "users.html", context, status_code=error.status_code if error else 200)


def _user_id(text: str) -> int:
    user_id = forms.positive_int(text)
    if user_id is None:
        raise NotFound(f"User {text} not found")
    return user_id


def _done(operation: str, user_id: int) -> Response:
    return redirect(f"{PREFIX}/users?done={operation}&user={user_id}")


@router.get("/users")
def users_page(request: Request, actor: DashboardActor, session: ReadSession, now: NowDep) -> Response:
    """The users the admin manages (Ayla::Admin: all; OEM::Admin: its OEM's)."""
    return _users_page(request, session, actor, now=now)


@router.post("/users/{user_id}/password")
def set_password(
    user_id: str,
    request: Request,
    actor: DashboardActor,
    form: CheckedForm,
    session: WriteSession,
    now: NowDep,
) -> Response:
    """A new password for the user; its sessions end (the admin's own stays)."""
    try:
        state = accounts.set_password(
            session,
            actor,
            user_id=_user_id(user_id),
            password=str(form.get("password") or ""),
            now=now,
            keep_access_token=session_token(request),
        )
    except ValidationFailed as error:
        return _users_page(request, session, actor, now=now, error=error)
    return _done("password", state.user.id)


@router.post("/users/{user_id}/{operation}")
def change_user(
    user_id: str,
    operation: str,
    actor: DashboardActor,
    _form: CheckedForm,
    session: WriteSession,
    now: NowDep,
) -> Response:
    """Unlock, deactivate or reactivate the user."""
    run = OPERATIONS.get(operation)
    if run is None:
        raise NotFound("Page not found")
    state = run(session, actor, user_id=_user_id(user_id), now=now)
    return _done(operation, state.user.id)
