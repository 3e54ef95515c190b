"""The request transaction: one database session per request, chosen explicitly by the route.

A route asks for ``ReadSession`` (reads only; on SQLite it never takes the writer lock,
on PostgreSQL it may run on a replica-safe connection) or ``WriteSession``. The session
is finished before the response leaves, never after:

- a sync endpoint (the usual case) runs in one worker thread and commits there, right
  after its work, so no connection is held while the request waits for the event loop.
  That is the request's only hop to the thread pool: the caller's authentication
  (accounts.access) is an ``InEndpointThread`` value, a short read of its own run in the
  same thread just before the endpoint, after every other dependency (the body) is in;
- a route whose whole work is one short write (``LineWriteSession``: the factory line's
  per-device calls) is, where the database has one writer (SQLite), handed to the
  process's ``LineWriter`` (line_writer.py): one thread that runs the calls queued
  together in one transaction, a savepoint each, and answers each after that commit
  (group commit; its own docstring has the rules). An Idempotency-Key call, whose answer
  is stored with the change, waits instead for the writer in the event loop (a lane as
  wide as the writer pool) and commits alone. Elsewhere (PostgreSQL) it is a write
  session like any other. A route with a slow step before it writes (sign-in's password
  hash) keeps ``WriteSession``, so that the step never holds up the line;
- any error rolls the transaction back, except a ``ServiceError`` whose
  ``commit_recorded`` is true (a refused call that records a failed job: the record is
  the answer, so it commits);
- an async endpoint's session is finished by the route after the endpoint returns;
- just before a write session's successful commit, the app's audit hook
  (``app.state.audit_hook``, set by ``devicefactory.audit``) records the change in the same
  transaction: the change and its audit entry commit together or not at all. Refused
  calls (errors) are not changes and write no entry; a download, which changes nothing,
  is recorded by ``record_event`` in a short write transaction of its own.

Dependencies with ``yield`` are not used for this on purpose: FastAPI may run their exit
code after the response is sent, which would tell a client "200" for a write that then
fails to commit.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from typing import Annotated, Any, Protocol

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from devicefactory.config import Settings
from devicefactory.db import session_scope
from devicefactory.errors import ServiceError
from devicefactory.http.line_writer import LineCall, LineWriter

# Set by a middleware that must keep the answer with the change (idempotency.py): called
# with the request's session and the rendered response just before the commit.
AnswerRecorder = Callable[[Session, Response], None]
answer_recorder: contextvars.ContextVar[AnswerRecorder | None] = contextvars.ContextVar(
    "answer_recorder", default=None
)


class AuditHook(Protocol):
    """What the request transaction asks of the audit log (``devicefactory.audit`` answers)."""

    def change(self, session: Session, request: Request, answer: object) -> None:
        """Record a write route's success in its transaction; ``answer`` is what the endpoint
        returned (a sync endpoint) or the response (an async one)."""

    def event(self, session: Session, request: Request, what: str, details: Mapping[str, object]) -> None:
        """Record an event that changes nothing (a file download)."""


# The writer lane a LineWriteSession route waits in (None: the default thread limiter).
_request_lane: contextvars.ContextVar[CapacityLimiter | None] = contextvars.ContextVar(
    "request_lane", default=None
)

# The process's group-committing writer a LineWriteSession route hands its work to (None:
# a thread of the pool, in the lane above).
_request_writer: contextvars.ContextVar[LineWriter | None] = contextvars.ContextVar(
    "request_writer", default=None
)

# The request's session, seen by the endpoint's worker thread (contextvars are copied
# into it), so that the thread can finish the transaction it ran.
_request_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "request_session", default=None
)


class TransactionalRoute(APIRoute):
    """Commit the request's session before the response leaves, roll back on error.

    Dependencies with ``yield`` may run their exit code after the response is sent,
    which would tell a client "200" for a write that then fails to commit. A sync
    endpoint commits in its own worker thread, right after its work: the connection
    (SQLite's single writer) is never held while the request waits for the event loop.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        endpoint = _resolving(endpoint) if inspect.iscoroutinefunction(endpoint) else _committing(endpoint)
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            _request_lane.set(None)  # a LineWriteSession sets them again
            _request_writer.set(None)
            try:
                response = await handler(request)
            except ServiceError as error:
                await _end_transaction(request, commit=error.commit_recorded)
                raise
            except BaseException:
                await _end_transaction(request, commit=False)
                raise
            await _end_transaction(request, commit=True, response=response)
            return response

        return handle


class InEndpointThread:
    """A dependency's value worked out in the endpoint's own worker thread, just before the
    endpoint runs: a dependency that needs the database (the caller's authentication) returns
    one instead of asking for a thread of its own, so that a request makes one hop to the
    thread pool, not two. The endpoint receives ``work()``'s result, never this object."""

    __slots__ = ("work",)

    def __init__(self, work: Callable[[], object]) -> None:
        self.work = work


def _resolved(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: v.work() if isinstance(v, InEndpointThread) else v for name, v in kwargs.items()}


def _resolving(endpoint: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """An async endpoint (a stream, an upload): its deferred values in one hop before it runs."""

    @functools.wraps(endpoint)
    async def resolve_and_run(*args: Any, **kwargs: Any) -> Any:
        if any(isinstance(value, InEndpointThread) for value in kwargs.values()):
            kwargs = await run_in_threadpool(_resolved, kwargs)
        return await endpoint(*args, **kwargs)

    return resolve_and_run


def _committing(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    async def in_worker_thread(*args: Any, **kwargs: Any) -> Any:
        writer = _request_writer.get()
        session = _request_session.get()
        if writer is not None and session is not None:
            call = LineCall(
                session,
                prepare=functools.partial(_resolved, kwargs),
                work=lambda resolved: run_and_finish(session, args, resolved),
            )
            return await writer.run(call)
        work = functools.partial(run_and_commit, *args, **kwargs)
        return await anyio.to_thread.run_sync(work, limiter=_request_lane.get())

    def run_and_commit(*args: Any, **kwargs: Any) -> Any:
        return run_and_finish(_request_session.get(), args, _resolved(kwargs))

    def run_and_finish(session: Session | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            result = endpoint(*args, **kwargs)
        except ServiceError as error:
            if session is not None:
                _finish(session, commit=error.commit_recorded)
            raise
        if session is not None and answer_recorder.get() is None:
            _record_change(session, result)
            _finish(session, commit=True)  # else the route commits with the answer
        return result

    return in_worker_thread


def _finish(session: Session, *, commit: bool) -> None:
    if commit:
        session.commit()
    else:
        session.rollback()


async def _end_transaction(request: Request, *, commit: bool, response: Response | None = None) -> None:
    session: Session | None = getattr(request.state, "db_session", None)
    if session is None:
        return
    request.state.db_session = None
    if not session.in_transaction():
        session.close()  # already committed in the endpoint's thread: nothing to wait for
        return

    record = answer_recorder.get() if commit and response is not None else None

    def finish() -> None:
        try:
            if commit and response is not None:
                _record_change(session, response)
            if record is not None and response is not None:
                record(session, response)
            if commit:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    await run_in_threadpool(finish)


def _record_change(session: Session, answer: object) -> None:
    """The audit entry of a write route's success, once, in the transaction about to commit."""
    request: Request | None = session.info.pop("audited_request", None)
    if request is None or not session.in_transaction():
        return  # a read session, recorded already, or nothing was done
    hook: AuditHook | None = getattr(request.app.state, "audit_hook", None)
    if hook is not None:
        hook.change(session, request, answer)


def record_event(request: Request, what: str, details: Mapping[str, object]) -> None:
    """Record an event that changes nothing (a file download) before it is answered, in a
    short write transaction of its own.

    The request's own read transaction is finished first: what it read (the tenant check,
    a reserve bundle) is in hand, and on SQLite a test's single connection is free again.
    """
    hook: AuditHook | None = getattr(request.app.state, "audit_hook", None)
    if hook is None:
        return
    own: Session | None = getattr(request.state, "db_session", None)
    if own is not None and "audited_request" not in own.info and own.in_transaction():
        own.commit()  # a read session: nothing to keep
    with session_scope(request.app.state.session_factory) as session:
        hook.event(session, request, what, details)


def _open(request: Request, factory: sessionmaker[Session]) -> Session:
    if getattr(request.state, "db_session", None) is not None:
        raise RuntimeError("a route asks for one session only (ReadSession or WriteSession)")
    session = factory()
    request.state.db_session = session
    _request_session.set(session)
    return session


async def read_session(request: Request) -> Session:
    """A session that only reads."""
    return _open(request, request.app.state.read_session_factory)


async def write_session(request: Request) -> Session:
    """A session that may write; committed as described above."""
    session = _open(request, request.app.state.session_factory)
    session.info["audited_request"] = request  # its success is an audit entry
    return session


async def line_write_session(request: Request) -> Session:
    """A write session for a route that is one short write and nothing slow (the factory
    line's per-device calls). Where the database has one writer, the process's
    ``LineWriter`` runs it, batched with the calls queued beside it (line_writer.py);
    elsewhere it is a plain write session."""
    writer: LineWriter | None = request.app.state.line_writer
    if writer is None or answer_recorder.get() is not None:  # an Idempotency-Key call commits alone
        session = await write_session(request)
        width: int | None = request.app.state.writer_lane_width
        if width is not None:
            lane: CapacityLimiter | None = getattr(request.app.state, "writer_lane", None)
            if lane is None:  # made in the running event loop, on first use
                lane = request.app.state.writer_lane = CapacityLimiter(width)
            _request_lane.set(lane)
        return session
    session = _open(request, request.app.state.line_session_factory)
    session.info["audited_request"] = request
    _request_writer.set(writer)
    return session


async def get_read_sessions(request: Request) -> sessionmaker[Session]:
    """Sessions that only read (on SQLite they never take the writer lock): one per page of
    a streamed file (actions/files.py), or the reads before a slow step (sign-in)."""
    factory: sessionmaker[Session] = request.app.state.read_session_factory
    return factory


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


ReadSession = Annotated[Session, Depends(read_session)]
WriteSession = Annotated[Session, Depends(write_session)]
LineWriteSession = Annotated[Session, Depends(line_write_session)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(get_read_sessions)]
NowDep = Annotated[datetime, Depends(get_now)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
