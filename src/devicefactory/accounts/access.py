"""Who is calling: the bearer token authenticated, and the sign-in rate limits (§11).

These are HTTP dependencies of the routers and dashboard above; they live with accounts so
that the HTTP floor below knows nothing of users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor
from devicefactory.http.caller import bearer_token, client_address
from devicefactory.http.transaction import InEndpointThread
from devicefactory.limits import RateLimit


def caller_of(request: Request, token: str, now: datetime) -> Actor:
    """The caller of ``token``, read through the reader (on SQLite it never takes the writer
    lock), kept on the request for the audit log."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    engine: Engine = factory.kw["bind"]
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            # One statement needs no transaction: no BEGIN and ROLLBACK round trips. (Not on
            # SQLite, whose driver would keep the changed mode on the pooled connection.)
            connection.execution_options(isolation_level="AUTOCOMMIT")
        actor = accounts.authenticate(connection, access_token=token, now=now)
    request.state.actor = actor
    return actor


async def get_actor(request: Request) -> Actor:
    """The caller of the bearer token, authenticated in the endpoint's worker thread
    (``InEndpointThread``: no hop of its own), after the body has been read, and without
    holding a connection while the request waits for its endpoint's turn. (The clock is
    read here, not as a dependency: each dependency costs the hot path a solve.)"""
    token = bearer_token(request)
    clock: Callable[[], datetime] = request.app.state.clock
    now = clock()
    return cast(Actor, InEndpointThread(lambda: caller_of(request, token, now)))


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
