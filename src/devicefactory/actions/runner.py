"""The action runner: claims queued uploads from the database and works them in batches.

One transaction per batch holds the batch's device changes, its line outcomes and
the action's progress, so a crash at any point loses nothing and a restart resumes
after the last committed line. Each batch re-checks, under the action's row lock,
that this runner still holds the claim, so no line is applied twice when a runner
presumed dead comes back; ``action_lines`` being unique on (action, line) is the
last guard.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import queries as accounts_queries
from devicefactory.accounts.policy import Actor
from devicefactory.accounts.service import actor_for
from devicefactory.actions import queries
from devicefactory.actions.logfile import ParsedLine, iter_upload
from devicefactory.actions.outcomes import LineOutcome
from devicefactory.actions.uploads import work_lines
from devicefactory.config import Settings
from devicefactory.db import session_scope, utcnow
from devicefactory.processes import pause
from devicefactory.storage import FileStore, is_stored
from devicefactory.tables.actions import ActionStatus, ActionType, FactoryAction
from devicefactory.webhooks import outbox

log = logging.getLogger("devicefactory.actions")


class ActionRunner:
    def __init__(self, session_factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = session_factory
        self.store = FileStore(session_factory)
        self.batch_size = settings.action_batch_size
        self.poll_seconds = settings.action_poll_seconds
        self.stale_after = timedelta(seconds=settings.action_stale_seconds)
        # claimed_by holds 64 characters; long (pod) host names are cut, the rest is unique.
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.run_once(stop):
                pause(stop, self.poll_seconds)

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim and finish one action; False when there was none to do."""
        try:
            action_id = self._claim()
        except Exception:  # a database hiccup: try again at the next poll, keep running
            log.exception("could not claim a factory action")
            return False
        if action_id is None:
            return False
        try:
            self._work(action_id, stop or threading.Event())
        except _LostClaim:
            log.warning("factory action %s was taken over by another runner", action_id)
        except Exception as error:  # an unreadable file, a bug: fail the action, keep running
            log.exception("factory action %s failed", action_id)
            self._fail(action_id, f"internal error while working the file: {type(error).__name__}")
        return True

    def _claim(self) -> int | None:
        with session_scope(self.factory) as session:
            now = utcnow()
            while (
                action := queries.claim_next_action(session, stale_before=now - self.stale_after)
            ) is not None:
                if self._take(session, action, now):
                    return action.id
                session.flush()  # failed for good: look at the next one
            return None

    def _take(self, session: Session, action: FactoryAction, now: datetime) -> bool:
        """Claim ``action``; False when its file is gone (the action fails)."""
        if not action.file_id or not is_stored(session, action.file_id):
            action.status, action.finished_at = ActionStatus.FAILURE, now
            action.message = "the uploaded file is no longer stored; upload it again"
            log.error("factory action %s: its stored file is gone", action.id)
            return False
        action.status, action.claimed_by, action.heartbeat_at = ActionStatus.RUNNING, self.worker_id, now
        action.started_at = action.started_at or now
        log.info("claimed factory action %s (%s, from line %s)", action.id, action.type, action.lines_done)
        return True

    def _work(self, action_id: int, stop: threading.Event) -> None:
        with self.factory() as session:
            action = session.get(FactoryAction, action_id)
            assert action is not None
            assert action.file_id
            file_id, resume_after = action.file_id, action.lines_done
            dsn_list = action.upload_type == ActionType.RETIRE
        with self.store.open(file_id) as stream:
            lines = iter_upload(stream, dsn_list=dsn_list)
            parsed = (line for line in lines if line.line_no > resume_after)
            for batch in _batches(parsed, self.batch_size):
                if stop.is_set():
                    self._release(action_id)
                    return
                self._work_batch(action_id, batch)
        self._finish(action_id)

    def _work_batch(self, action_id: int, batch: list[ParsedLine]) -> None:
        for attempt in range(3):
            try:
                return self._try_batch(action_id, batch)
            except IntegrityError:
                # A concurrent API call took a mac or hwsig of this batch; the retry sees it.
                log.warning(
                    "factory action %s: batch conflicted with a concurrent write (try %s)", action_id, attempt
                )
        self._try_batch(action_id, batch)

    def _try_batch(self, action_id: int, batch: list[ParsedLine]) -> None:
        with session_scope(self.factory) as session:
            action = _owned(session, action_id, self.worker_id)
            actor = _actor(session, action)
            now = utcnow()
            outcomes = work_lines(session, actor, action, batch, now)
            queries.insert_action_lines(session, action_id, outcomes)
            _count(action, outcomes, last_line=batch[-1].line_no, now=now)

    def _finish(self, action_id: int) -> None:
        with session_scope(self.factory) as session:
            action = _owned(session, action_id, self.worker_id)
            failed = action.conflict + action.invalid
            action.status = ActionStatus.FAILURE if failed else ActionStatus.SUCCESS
            action.lines_done = action.lines_total
            action.finished_at = utcnow()
            action.message = f"{failed} line(s) failed" if failed else "every line succeeded"
            queries.delete_overlay(session, action_id)
            outbox.emit(session, action.oem_id, outbox.Event.ACTION_FINISHED, outbox.action_payload(action))
            log.info("factory action %s finished: %s", action_id, action.status)

    def _release(self, action_id: int) -> None:
        """Stopping: hand the action back to the queue; any runner resumes after its last batch."""
        with session_scope(self.factory) as session:
            action = _owned(session, action_id, self.worker_id)
            action.status, action.claimed_by = ActionStatus.PENDING, None
            log.info("factory action %s released at line %s", action_id, action.lines_done)

    def _fail(self, action_id: int, message: str) -> None:
        with session_scope(self.factory) as session:
            action = queries.lock_action(session, action_id)
            if action is not None and action.claimed_by == self.worker_id:
                action.status = ActionStatus.FAILURE
                action.message = message
                action.finished_at = utcnow()
                queries.delete_overlay(session, action_id)


class _LostClaim(Exception):
    """Another runner took the action over (this one was presumed dead)."""


def _owned(session: Session, action_id: int, worker_id: str) -> FactoryAction:
    action = queries.lock_action(session, action_id)
    if action is None or action.claimed_by != worker_id:
        raise _LostClaim(action_id)
    return action


def _actor(session: Session, action: FactoryAction) -> Actor:
    user = accounts_queries.get_user(session, action.created_by_user_id or 0)
    assert user is not None
    return actor_for(user, accounts_queries.get_oem(session, user.oem_id) if user.oem_id else None)


def _count(action: FactoryAction, outcomes: list[LineOutcome], *, last_line: int, now: datetime) -> None:
    for outcome in outcomes:
        setattr(action, outcome.outcome, getattr(action, outcome.outcome) + 1)
    action.count += sum(1 for o in outcomes if o.dsn)
    action.lines_done = last_line
    action.heartbeat_at = now


def _batches(lines: Iterator[ParsedLine], size: int) -> Iterator[list[ParsedLine]]:
    while batch := list(itertools.islice(lines, size)):
        yield batch
