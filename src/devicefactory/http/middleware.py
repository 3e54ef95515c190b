"""The ASGI middleware every request passes: its id, access log, metrics and early limits."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devicefactory.errors import HeadersTooLarge, PayloadTooLarge, RequestTimeout, ServiceError
from devicefactory.http.caller import Caller
from devicefactory.http.errors import error_headers, error_response
from devicefactory.logs import request_id_var

log = logging.getLogger("devicefactory.web")


class _RequestIds:
    """32 hex digits, unique across processes and hosts: a random 64-bit prefix per process
    and a counter. A uuid4 per request cost a system call (getrandom) in the event loop, a
    point where the line's writer thread takes the GIL from it."""

    def __init__(self) -> None:
        self.restart()
        os.register_at_fork(after_in_child=self.restart)  # a new process: a prefix of its own

    def restart(self) -> None:
        self.prefix, self.counter = os.urandom(8).hex(), itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


new_request_id = _RequestIds()


class RequestContextMiddleware:
    """Request id (X-Request-Id), access log line, metrics, HSTS under TLS, and the limits a
    request meets before any route: header size, body size, a body that stops arriving."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body: int,
        max_upload: int,
        max_headers: int,
        body_idle_seconds: float,
        observe: Callable[[str, str, int, float], None],
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload
        self.max_headers = max_headers
        self.body_idle_seconds = body_idle_seconds
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _safe_request_id(incoming) else new_request_id()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        limit = self.max_upload if _is_multipart(scope) else self.max_body
        extra = [(b"x-request-id", request_id.encode())]
        if scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", b"max-age=31536000"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            refusal = self._refused_at_once(scope, limit)
            if refusal is not None:
                await _send_error(refusal, send_with_id)
                return
            await self.app(scope, self._guarded_receive(receive, limit), send_with_id)
        except RequestRefused as refused:
            await _send_error(refused.error, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            self.observe(scope["method"], getattr(scope.get("route"), "path", "unmatched"), status, elapsed)
            _access_log(scope, status, elapsed)
            request_id_var.reset(token)

    def _refused_at_once(self, scope: Scope, limit: int) -> ServiceError | None:
        if sum(len(name) + len(value) for name, value in scope["headers"]) > self.max_headers:
            return HeadersTooLarge(self.max_headers)
        declared = _content_length(scope)
        return PayloadTooLarge(limit) if declared is not None and declared > limit else None

    def _guarded_receive(self, receive: Receive, limit: int) -> Receive:
        """The body, refused past ``limit`` bytes or when no part of it arrives for a while
        (a client that opens a request and stalls would hold its worker for ever)."""
        seen, complete = 0, False
        idle = self.body_idle_seconds

        async def wrapped() -> Message:
            nonlocal seen, complete
            if complete:
                return await receive()  # only a disconnect is left to hear of: wait for it
            try:
                with anyio.fail_after(idle):
                    message = await receive()
            except TimeoutError:
                raise RequestRefused(RequestTimeout(idle)) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    raise RequestRefused(PayloadTooLarge(limit))
            return message

        return wrapped


class RequestRefused(Exception):
    """Raised from the body a route reads when the body breaks a limit; only this
    middleware answers it (routes that catch every exception must let it through)."""

    def __init__(self, error: ServiceError) -> None:
        self.error = error


async def _send_error(error: ServiceError, send: Send) -> None:
    response = error_response(error, error_headers(error))
    await send({"type": "http.response.start", "status": error.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _access_log(scope: Scope, status: int, elapsed: float) -> None:
    """One line a request: who (user, OEM, client address), what, and how it went."""
    actor: Caller | None = scope.get("state", {}).get("actor")
    client = scope.get("client")
    log.info(
        "%s %s %s %.1fms client=%s user=%s oem=%s",
        scope["method"],
        scope["path"],
        status,
        elapsed * 1000,
        client[0] if client else "-",
        actor.email if actor else "-",
        (actor.oem_id or "platform") if actor else "-",
        extra={
            "http": {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
                "client": client[0] if client else None,
                "user": actor.email if actor else None,
                "oem": actor.oem_id if actor else None,
            }
        },
    )


def _content_length(scope: Scope) -> int | None:
    raw = dict(scope["headers"]).get(b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _is_multipart(scope: Scope) -> bool:
    content_type: bytes = dict(scope["headers"]).get(b"content-type", b"")
    return content_type.startswith(b"multipart/form-data")


def _safe_request_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value)
