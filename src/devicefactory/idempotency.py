"""Idempotent retries (SPEC §13): ``Idempotency-Key`` on the POSTs that change something.

A factory station that times out does not know whether its reserve or manufacture went
through; it sends the same request again with the same key and gets the first answer
(status, body, ``X-Factory-Action``), with nothing changed a second time.

- The key belongs to the user who sent it (keys of two users never meet), for 24 h.
- The first request claims the key (a row with no answer yet) before it does any work;
  a twin sent meanwhile waits for the answer, and past ``wait_seconds`` gets 409 AFS-409
  with ``Retry-After``.
- A successful answer is stored in the same transaction as the change it reports
  (``http.transaction.answer_recorder``): no crash can leave one without the other.
  A refusal (4xx) is stored after it was sent, as the first answer too. An answer that
  says "try again" (5xx, 408, 429, 401, or any answer with ``Retry-After`` such as
  AFS-605 while the key pool refills) is not stored: the claim is released so that
  the retry does the work.
- The same key with another method, path or body: 422 AFS-600 ``Idempotency-Key was
  used for another request``.
- A claim whose request died with its process (no answer after ``abandon_seconds``) is
  taken over by the next request with that key; the first request's work, if any, was
  rolled back with it.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, Any

import anyio
from fastapi import Response
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devicefactory.accounts import service as accounts
from devicefactory.db import session_scope
from devicefactory.errors import Conflict, MalformedRequest, ServiceError, Unauthorized, ValidationFailed
from devicefactory.http.errors import error_headers, error_response
from devicefactory.http.transaction import answer_recorder
from devicefactory.tables.idempotency import IdempotentRequest

KEY_TTL = timedelta(hours=24)
# The routes that change something (SPEC §13); the path is seen after the ".json" suffix
# is taken off.
IDEMPOTENT_PATHS = re.compile(
    r"^/devicefactory/v1/(?:devices/(?:reserve|[^/]+/(?:manufacture|provision|verify|factory_reset|retire))"
    r"|factory_actions)/?$"
)
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
# Answers that mean "try again": never kept as the first answer.
_RETRYABLE = {401, 408, 429}
_KEPT_HEADERS = ("content-type", "x-factory-action", "retry-after", "x-reservable-now")
_SPOOL_BYTES = 1 << 20


class KeyReused(MalformedRequest):
    def __init__(self) -> None:
        super().__init__("Idempotency-Key was used for another request")


class KeyInProgress(Conflict):
    def __init__(self, retry_after: int) -> None:
        super().__init__("a request with this Idempotency-Key is still being worked; retry later")
        self.retry_after = retry_after


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        session_factory: sessionmaker[Session],
        read_session_factory: sessionmaker[Session],
        clock: Callable[[], datetime],
        wait_seconds: float = 30.0,
        abandon_seconds: float = 600.0,
    ) -> None:
        self.app = app
        self.writer = session_factory
        self.reader = read_session_factory
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.abandon = timedelta(seconds=abandon_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _idempotency_key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not _KEY.match(key):
            error = ValidationFailed.of(["Idempotency-Key must be 1 to 255 printable ASCII characters"])
            await _send(send, error_response(error, error_headers(error)))
            return
        user_id = await run_in_threadpool(self._user_of, scope)
        if user_id is None:
            await self.app(scope, receive, send)  # the route answers 401
            return
        spooled = await _spool_body(scope, receive)
        if spooled is None:
            return  # the client went away mid-body: nothing to answer, and no key claimed
        body, digest = spooled
        try:
            answer = await self._claim_or_wait(user_id, key, digest)
            if answer is not None:
                await _send(send, answer)
                return
            await self._first_request(scope, _replaying(body, receive), send, user_id, key)
        except ServiceError as error:
            await _send(send, error_response(error, error_headers(error)))
        finally:
            body.close()

    # --- claiming a key ------------------------------------------------------------------

    def _user_of(self, scope: Scope) -> int | None:
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() not in ("auth_token", "bearer") or not token.strip():
            return None
        try:
            with self.reader() as session:
                caller = accounts.authenticate(
                    session.connection(), access_token=token.strip(), now=self.clock()
                )
                return caller.user_id
        except Unauthorized:
            return None

    async def _claim_or_wait(self, user_id: int, key: str, digest: str) -> Response | None:
        """None when this request claimed the key (it does the work), else the answer."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            found = await run_in_threadpool(self._claim, user_id, key, digest)
            if found is None:
                return None
            if found.request_hash != digest:
                raise KeyReused()
            if found.status is not None:
                return _stored_answer(found)
            if time.monotonic() >= deadline:
                raise KeyInProgress(retry_after=5)
            await anyio.sleep(0.1)

    def _claim(self, user_id: int, key: str, digest: str) -> IdempotentRequest | None:
        now = self.clock()
        with session_scope(self.writer) as session:
            # A key past its 24 h, or a claim whose request died with its process, is free.
            session.execute(
                delete(IdempotentRequest).where(
                    IdempotentRequest.user_id == user_id,
                    IdempotentRequest.key == key,
                    (IdempotentRequest.created_at <= now - KEY_TTL)
                    | (
                        IdempotentRequest.status.is_(None)
                        & (IdempotentRequest.created_at <= now - self.abandon)
                    ),
                )
            )
            make_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            claimed = session.execute(
                make_insert(IdempotentRequest)
                .values(user_id=user_id, key=key, request_hash=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=["user_id", "key"])
                .returning(IdempotentRequest.user_id)
            )
            if claimed.first() is not None:
                return None
            found = session.scalars(
                select(IdempotentRequest).where(
                    IdempotentRequest.user_id == user_id, IdempotentRequest.key == key
                )
            ).one()
            session.expunge(found)
            return found

    # --- the first request ---------------------------------------------------------------

    async def _first_request(
        self, scope: Scope, receive: Receive, send: Send, user_id: int, key: str
    ) -> None:
        recorded = False

        def record(session: Session, response: Response) -> None:
            nonlocal recorded
            if response.status_code < 300:  # only a success changes something
                _store(
                    session, user_id, key, response.status_code, dict(response.headers), bytes(response.body)
                )
                recorded = True

        status, headers, chunks = 500, {}, []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        token = answer_recorder.set(record)
        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await run_in_threadpool(self._release, user_id, key)
            raise
        finally:
            answer_recorder.reset(token)
        if recorded:
            return
        if status >= 500 or status in _RETRYABLE or "retry-after" in headers:
            await run_in_threadpool(self._release, user_id, key)
        else:
            await run_in_threadpool(self._keep, user_id, key, status, headers, b"".join(chunks))

    def _release(self, user_id: int, key: str) -> None:
        with session_scope(self.writer) as session:
            session.execute(
                delete(IdempotentRequest).where(
                    IdempotentRequest.user_id == user_id,
                    IdempotentRequest.key == key,
                    IdempotentRequest.status.is_(None),
                )
            )

    def _keep(self, user_id: int, key: str, status: int, headers: dict[str, str], body: bytes) -> None:
        with session_scope(self.writer) as session:
            _store(session, user_id, key, status, headers, body)


def _store(
    session: Session, user_id: int, key: str, status: int, headers: dict[str, str], body: bytes
) -> None:
    kept = {name: value for name, value in headers.items() if name.lower() in _KEPT_HEADERS}
    session.execute(
        update(IdempotentRequest)
        .where(IdempotentRequest.user_id == user_id, IdempotentRequest.key == key)
        .values(status=status, headers=json.dumps(kept), body=body)
    )


def _stored_answer(found: IdempotentRequest) -> Response:
    headers: dict[str, Any] = json.loads(found.headers or "{}")
    media_type = headers.pop("content-type", None)
    headers["Idempotent-Replayed"] = "true"
    return Response(
        found.body or b"", status_code=found.status or 200, headers=headers, media_type=media_type
    )


def _idempotency_key(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "POST" or not IDEMPOTENT_PATHS.match(scope["path"]):
        return None
    raw = dict(scope["headers"]).get(b"idempotency-key")
    return None if raw is None else raw.decode("latin-1").strip()


async def _spool_body(scope: Scope, receive: Receive) -> tuple[IO[bytes], str] | None:
    """The whole body (to disk past 1 MB: uploads), and the request's fingerprint: method,
    path, query, content type and body; a multipart body without its boundary, which a
    client picks anew each time it sends."""
    body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - closed by the caller
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            body.close()
            return None
        body.write(message.get("body", b""))
        more = message.get("more_body", False)
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    boundary = b""
    if content_type.startswith(b"multipart/"):
        boundary = content_type.partition(b"boundary=")[2].split(b";")[0].strip().strip(b'"')
        content_type = content_type.partition(b";")[0]
    digest = hashlib.sha256(f"{scope['method']} {scope['path']}?".encode() + scope.get("query_string", b""))
    digest.update(b"\n" + content_type + b"\n")
    body.seek(0)
    keep = max(len(boundary) - 1, 0)
    carry = b""
    while chunk := body.read(1 << 16):
        data = (carry + chunk).replace(boundary, b"") if boundary else chunk
        carry = data[len(data) - keep :] if keep else b""
        digest.update(data[: len(data) - keep] if keep else data)
    digest.update(carry)
    body.seek(0)
    return body, digest.hexdigest()


def _replaying(body: IO[bytes], receive: Receive) -> Receive:
    """The spooled body, sent on to the app as it arrived; then the client's own messages."""
    done = False

    async def replay() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = body.read(1 << 16)
        more = bool(chunk) and body.tell() < _size(body)
        done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    return replay


def _size(body: IO[bytes]) -> int:
    here = body.tell()
    end = body.seek(0, 2)
    body.seek(here)
    return end


async def _send(send: Send, response: Response) -> None:
    await send(
        {"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers}
    )
    await send({"type": "http.response.body", "body": response.body})
