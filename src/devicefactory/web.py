"""What every API router shares: the request transaction, the caller, JSON bodies, errors."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, BinaryIO, Protocol

import anyio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor
from devicefactory.config import Settings
from devicefactory.db import is_statement_timeout
from devicefactory.errors import (
    HeadersTooLarge,
    MalformedRequest,
    MissingAttributes,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    TooSlow,
    Unauthorized,
    ValidationFailed,
)
from devicefactory.keys.crypto import Keyring
from devicefactory.keys.master import KeyringSource, load_master_key
from devicefactory.limits import InFlightLimit, RateLimit, Slot
from devicefactory.logs import request_id_var

log = logging.getLogger("devicefactory.web")


# --- the request transaction ------------------------------------------------------------


class TransactionalRoute(APIRoute):
    """Commit the request's session before the response leaves, roll back on error.

    Dependencies with ``yield`` may run their exit code after the response is sent,
    which would tell a client "200" for a write that then fails to commit. A sync
    endpoint commits in its own worker thread, right after its work: the connection
    (SQLite's single writer) is never held while the request waits for the event loop.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except ServiceError as error:
                await _end_transaction(request, commit=error.commit_recorded)
                raise
            except BaseException:
                await _end_transaction(request, commit=False)
                raise
            await _end_transaction(request, commit=True)
            return response

        return handle


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def run_and_commit(*args: Any, **kwargs: Any) -> Any:
        session = next((value for value in kwargs.values() if isinstance(value, Session)), None)
        try:
            result = endpoint(*args, **kwargs)
        except ServiceError as error:
            if session is not None:
                _finish(session, commit=error.commit_recorded)
            raise
        if session is not None:
            _finish(session, commit=True)
        return result

    return run_and_commit


def _finish(session: Session, *, commit: bool) -> None:
    if commit:
        session.commit()
    else:
        session.rollback()


async def _end_transaction(request: Request, *, commit: bool) -> None:
    session: Session | None = getattr(request.state, "db_session", None)
    if session is None:
        return
    request.state.db_session = None
    if not session.in_transaction():
        session.close()  # already committed in the endpoint's thread: nothing to wait for
        return

    def finish() -> None:
        try:
            if commit:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    await run_in_threadpool(finish)


async def get_session(request: Request) -> Session:
    session: Session | None = getattr(request.state, "db_session", None)
    if session is None:
        reads_only = request.method in ("GET", "HEAD")
        factory: sessionmaker[Session] = (
            request.app.state.read_session_factory if reads_only else (request.app.state.session_factory)
        )
        session = factory()
        request.state.db_session = session
    return session


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in ("auth_token", "bearer") or not token.strip():
        raise Unauthorized()
    return token.strip()


def get_actor(request: Request, now: Annotated[datetime, Depends(get_now)]) -> Actor:
    """The caller, authenticated in a short read transaction of its own: on SQLite it
    never takes the writer lock, and no connection is held while the request waits
    for its endpoint's turn."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    with factory() as session:
        actor = accounts.authenticate(session, access_token=bearer_token(request), now=now)
    request.state.actor = actor
    return actor


def keyring_source(request: Request) -> KeyringSource:
    """The master key loaded (or created, mode 0600) on first use, then kept for the app's
    life, with any rotation in progress (keys.master)."""
    source: KeyringSource | None = getattr(request.app.state, "keyring_source", None)
    if source is None:
        settings: Settings = request.app.state.settings
        source = KeyringSource(load_master_key(settings), request.app.state.read_session_factory)
        request.app.state.keyring_source = source
    return source


def get_keyring(request: Request) -> Keyring:
    return keyring_source(request).current()


async def get_read_sessions(request: Request) -> sessionmaker[Session]:
    """Sessions that only read (on SQLite they never take the writer lock): one per page of
    a streamed file (actions/files.py), or the reads before a slow step (sign-in)."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return factory


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


def count_reserve(request: Request, oem_id: str | None) -> None:
    """The reserves-per-OEM metric."""
    request.app.state.metrics.reserves.labels(oem_id or "platform").inc()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def heavy_slot(request: Request, actor: Actor) -> Slot:
    """Admit one heavy read (a file, a search, an export) for the caller's OEM, or AFS-429."""
    limit: InFlightLimit = request.app.state.heavy_reads
    return limit.enter(actor.oem_id or f"user {actor.user_id}")


class Streamed(Protocol):
    @property
    def filename(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def chunks(self) -> Iterator[bytes]: ...


class StreamedFile(StreamingResponse):
    """A file sent as it is read; its heavy-read slot is freed however the sending ends
    (done, failed, or its client gone: Starlette then stops iterating the chunks)."""

    def __init__(self, file: Streamed, slot: Slot, headers: dict[str, str] | None = None) -> None:
        disposition = {"Content-Disposition": f'attachment; filename="{file.filename}"'}
        super().__init__(file.chunks, media_type=file.media_type, headers={**disposition, **(headers or {})})
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


def stream_heavy(
    request: Request, actor: Actor, make: Callable[[], Streamed], headers: dict[str, str] | None = None
) -> StreamedFile:
    """Admit the read, make the file (tenant checks run now), and stream it."""
    slot = heavy_slot(request, actor)
    try:
        return StreamedFile(make(), slot, headers)
    except BaseException:
        slot.release()
        raise


SessionDep = Annotated[Session, Depends(get_session)]
SignInAddressLimit = Annotated[None, Depends(limit_sign_in_address)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(get_read_sessions)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]
ActorDep = Annotated[Actor, Depends(get_actor)]
NowDep = Annotated[datetime, Depends(get_now)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


# --- JSON bodies --------------------------------------------------------------------------


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; anything else is AFS-600 (§4)."""
    body = await request.body()
    try:
        parsed = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise MalformedRequest("malformed JSON: the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise MalformedRequest("the request body must be a JSON object")
    # Only a \\uD800-\\uDFFF escape can produce one, so most bodies skip the walk.
    if _SURROGATE_ESCAPE.search(body) and not _encodable(parsed):
        raise MalformedRequest("malformed JSON: a string holds an unpaired surrogate (\\ud800-\\udfff)")
    return parsed


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(value: object) -> bool:
    """JSON may spell lone surrogates that no UTF-8 text (or database) can hold."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


JsonBody = Annotated[dict[str, Any], Depends(json_object)]


async def text_body(request: Request) -> str:
    body = await request.body()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest("the request body must be UTF-8 text") from None


TextBody = Annotated[str, Depends(text_body)]


@dataclass
class UploadForm:
    type: str
    validate_only: bool
    file_name: str
    stream: BinaryIO
    oem_host_version: str | None
    form: FormData

    async def close(self) -> None:
        await self.form.close()


async def parse_upload_form(request: Request) -> UploadForm:
    """The multipart upload form; Starlette spools the file to disk past 1 MB."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ValidationFailed.of(["the upload must be multipart/form-data with a file field"])
    try:
        form = await request.form(max_files=1, max_fields=10)
    except StarletteHTTPException as error:
        raise ValidationFailed.of([f"malformed multipart body: {error.detail}"]) from None
    upload = form.get("file")
    flag = str(form.get("validate_only") or "false").strip().lower()
    if upload is None or isinstance(upload, str) or flag not in ("true", "false", "1", "0"):
        await form.close()
        if upload is None or isinstance(upload, str):
            raise MissingAttributes(["file"])
        raise ValidationFailed.of(["validate_only must be true or false"])
    version = form.get("oem_host_version")
    return UploadForm(
        type=str(form.get("type") or "").strip(),
        validate_only=flag in ("true", "1"),
        file_name=upload.filename or "upload",
        stream=upload.file,
        oem_host_version=version.strip() if isinstance(version, str) and version.strip() else None,
        form=form,
    )


def section(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object such as ``{"user": {...}}``; AFS-600 when it is not an object."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise MalformedRequest(f"'{key}' must be a JSON object")
    return value


# --- error rendering --------------------------------------------------------------------


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": [error.as_dict()]}, status_code=error.status_code, headers=headers)


async def _service_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc, error_headers(exc))


def error_headers(error: ServiceError) -> dict[str, str]:
    """WWW-Authenticate on 401, Retry-After whenever the error knows when to retry."""
    headers = {"WWW-Authenticate": "auth_token"} if isinstance(error, Unauthorized) else {}
    headers.update(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return headers


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    failures = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('body', 'query', 'path'))}: "
        f"{e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    return error_response(ValidationFailed.of(failures))


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(NotFound())
    error = ServiceError(str(exc.detail))
    body = {"error": [{"code": f"AFS-{exc.status_code}", "message": error.message}]}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _database_refused_value(_request: Request, exc: Exception) -> Response:
    # Values a database cannot store (a NUL byte, an out-of-range number) are bad
    # input that slipped past a check: the caller's error, never a 500.
    log.warning("database refused a value: %s", type(exc).__name__)
    return error_response(
        ValidationFailed.of(["a value contains characters or numbers that cannot be stored"])
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    if is_statement_timeout(exc):
        log.warning("statement timeout on %s %s", request.method, request.url.path)
        error = TooSlow()
        return error_response(error, error_headers(error))
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": [{"code": "AFS-500", "message": "Internal server error"}]}
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _database_refused_value)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)


# --- middleware -------------------------------------------------------------------------


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
        request_id = incoming if _safe_request_id(incoming) else uuid.uuid4().hex
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
        except _Refused as refused:
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
                raise _Refused(RequestTimeout(idle)) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    raise _Refused(PayloadTooLarge(limit))
            return message

        return wrapped


class _Refused(Exception):
    def __init__(self, error: ServiceError) -> None:
        self.error = error


async def _send_error(error: ServiceError, send: Send) -> None:
    response = error_response(error, error_headers(error))
    await send({"type": "http.response.start", "status": error.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


def _access_log(scope: Scope, status: int, elapsed: float) -> None:
    """One line a request: who (user, OEM, client address), what, and how it went."""
    actor: Actor | None = scope.get("state", {}).get("actor")
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
