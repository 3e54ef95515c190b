"""What the HTTP layer knows of a caller: the request's address and token, and the
authenticated caller's identity as a protocol (accounts.policy.Actor fulfils it), so this
floor needs nothing from the domains above it."""

from __future__ import annotations

from typing import Protocol

from fastapi import Request

from devicefactory.errors import Unauthorized


class Caller(Protocol):
    @property
    def user_id(self) -> int: ...
    @property
    def email(self) -> str: ...
    @property
    def oem_id(self) -> str | None: ...


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in ("auth_token", "bearer") or not token.strip():
        raise Unauthorized()
    return token.strip()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def count_reserve(request: Request, oem_id: str | None) -> None:
    """The reserves-per-OEM metric. Async so that, run as a response's background task, it
    costs no hop to the thread pool."""
    request.app.state.metrics.reserves.labels(oem_id or "platform").inc()
