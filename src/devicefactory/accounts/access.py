"""Who is calling: the bearer token authenticated, and the sign-in rate limits (§11).

These are HTTP dependencies of the routers and dashboard above; they live with accounts so
that the HTTP floor below knows nothing of users.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor
from devicefactory.http.caller import bearer_token, client_address
from devicefactory.http.transaction import get_now
from devicefactory.limits import RateLimit


def get_actor(request: Request, now: Annotated[datetime, Depends(get_now)]) -> Actor:
    """The caller, authenticated in a short read transaction of its own: on SQLite it
    never takes the writer lock, and no connection is held while the request waits
    for its endpoint's turn."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    with factory() as session:
        actor = accounts.authenticate(session, access_token=bearer_token(request), now=now)
    request.state.actor = actor
    return actor


@dataclass(frozen=True)
class SignInLimits:
    by_address: RateLimit
    by_email: RateLimit


async def limit_sign_in_address(request: Request) -> None:
    """Count a sign-in attempt against its client address, or AFS-429 (§11): a dependency
    that runs first, so that a storm is refused before its bodies are even read."""
    limits: SignInLimits = request.app.state.sign_in_limits
    limits.by_address.hit(client_address(request))


def limit_sign_in_email(request: Request, email: object) -> None:
    """Count a sign-in attempt against its email, or AFS-429 (§11)."""
    limits: SignInLimits = request.app.state.sign_in_limits
    limits.by_email.hit(accounts.email_key(email))


ActorDep = Annotated[Actor, Depends(get_actor)]
SignInAddressLimit = Annotated[None, Depends(limit_sign_in_address)]
