"""Group commit of the factory line's writes where the database has one writer (SQLite).

Each web process has one ``LineWriter``: a thread that takes the first waiting line call
(reserve, manufacture, provision, verify, factory reset, retire) and the calls queued
behind it, at most ``MAX_BATCH``, and runs them as one transaction:

1. each call's in-thread dependencies (the caller's authentication) are worked out first,
   outside the transaction, so that the writer lock is never held for a read;
2. the writer connection begins (on SQLite: the writer lock, then ``BEGIN IMMEDIATE``);
   each call runs in a savepoint of its own (its session joins the connection with
   ``join_transaction_mode="create_savepoint"``), so a refused call rolls back its own
   work only and a refusal that records a failed job keeps that record;
3. one commit, and only then every call gets its answer: "200" still means committed.
   If the commit fails, every call of the batch fails and nothing of it is kept
   (``WriteLost``: 503, send it again). SQLite ends the whole transaction, not just the
   statement, on some errors (an interrupted write, a full disk): after each call the
   writer checks that its transaction is still there, and if not, the batch stops and
   fails whole, since the calls before were lost with it.

Why: under load SQLite's single writer, handed between web processes for every call,
set the line's throughput, and each hand-over empties the new holder's page cache; a
batch pays the hand-over, ``BEGIN`` and the commit once for several calls.

Within a process the order is arrival order. Between processes the writer lock
(``db._WriterLock``, a ``flock``) promises no order; handing it over in strict turn was
measured and changed nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from devicefactory.errors import ServiceError, WriteLost

log = logging.getLogger(__name__)

MAX_BATCH = 8  # calls per transaction: more only lengthens the wait of the first in it
IDLE_SECONDS = 5.0  # a writer thread with nothing to do ends; the next call starts another


@dataclass(eq=False)
class LineCall:
    """One request's work, handed from its event loop to the process's writer thread."""

    session: Session  # unbound until the writer binds it to the batch's connection
    prepare: Callable[[], Any]  # runs before the transaction (authentication)
    work: Callable[[Any], Any]  # the endpoint on what ``prepare`` returned; finishes its savepoint
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    answer: asyncio.Future[Any] = field(init=False)
    prepared: Any = None
    settled: bool = False

    def __post_init__(self) -> None:
        self.answer = self.loop.create_future()

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        """Hand the answer (or the error) back to the request's event loop, once."""
        if self.settled:
            return
        self.settled = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for the answer
            self.loop.call_soon_threadsafe(_settle, self.answer, value, error)


def _settle(answer: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(value)


class LineWriter:
    """The process's writer thread for the line's calls, started on demand."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.transactions = 0  # committed or not; a test reads it
        self._calls: queue.SimpleQueue[LineCall] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    async def run(self, call: LineCall) -> Any:
        """Queue ``call`` and wait for its answer, which comes after its batch's commit.

        The wait cannot be cut short: the request's session is in the writer's hands
        until the answer comes (a cancelled request still gets its work finished, then
        its cancellation)."""
        with self._lock:
            self._calls.put(call)
            if not self._running:
                try:
                    self._start()
                except BaseException:
                    call.settled = True  # answered by this error; a later thread skips it
                    raise
        cancelled = False
        while not call.answer.done():
            try:
                await asyncio.shield(call.answer)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return call.answer.result()

    def _start(self) -> None:
        """A writer thread (with ``_lock`` held)."""
        threading.Thread(target=self._serve, name="line-writer", daemon=True).start()
        self._running = True

    def _serve(self) -> None:
        try:
            while self._next_batch():
                pass
        except BaseException:  # a bug: the calls queued meanwhile get a thread of their own
            with self._lock:
                self._running = False
                if not self._calls.empty():
                    try:
                        self._start()
                    except BaseException:
                        while not self._calls.empty():
                            self._calls.get_nowait().settle(error=WriteLost())
            raise

    def _next_batch(self) -> bool:
        """Run the next batch; False when the thread has been idle long enough to end."""
        try:
            first = self._calls.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            with self._lock:
                if self._calls.empty():
                    self._running = False
                    return False
            return True
        batch = [first]
        while len(batch) < self.max_batch:
            try:
                batch.append(self._calls.get_nowait())
            except queue.Empty:
                break
        self._run_batch(batch)
        return True

    def _run_batch(self, batch: list[LineCall]) -> None:
        batch = [call for call in batch if not call.settled]
        try:
            self._commit_together([call for call in batch if _prepared(call)])
        finally:  # whatever happened, no call of the batch is left waiting
            for call in batch:
                call.settle(error=WriteLost())

    def _commit_together(self, ready: list[LineCall]) -> None:
        if not ready:
            return
        answers: list[tuple[LineCall, Any, BaseException | None]] = []
        self.transactions += 1
        try:
            with self.engine.connect() as connection, connection.begin():
                for call in ready:
                    call.session.bind = connection
                    try:
                        answers.append((call, call.context.run(call.work, call.prepared), None))
                    except Exception as error:  # the call's own failure: its savepoint goes
                        call.session.rollback()
                        answers.append((call, None, error))
                    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
                        # SQLite ends the whole transaction on some errors (an interrupted
                        # statement, a full disk): the calls before this one are gone too.
                        raise _TransactionLost(call, answers[-1][2])
        except _TransactionLost as lost:
            log.error(
                "a batch of %d line calls lost its transaction; none was kept",
                len(ready),
                exc_info=lost.error,
            )
            refusal = lost.error
            if isinstance(refusal, ServiceError) and not refusal.commit_recorded:
                lost.call.settle(error=refusal)  # its own answer stands: it needed nothing kept
            return  # the others (and a call whose own error was the database's): WriteLost
        except Exception:  # the commit (or a savepoint's rollback) failed: nothing is kept
            log.exception("a batch of %d line calls failed to commit; none was kept", len(ready))
            return  # each call: WriteLost (finally, above)
        for call, value, refusal in answers:
            call.settle(value, refusal)


class _TransactionLost(Exception):
    def __init__(self, call: LineCall, error: BaseException | None) -> None:
        super().__init__("the batch's transaction ended early")
        self.call, self.error = call, error


def _prepared(call: LineCall) -> bool:
    try:
        call.prepared = call.context.run(call.prepare)
    except Exception as error:  # the caller is refused before any write
        call.settle(error=error)
        return False
    return True
