"""Jobs: every operation on a reachable device, refused or not, leaves one (§2)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.devices import queries
from devicefactory.devices.models import JobResult
from devicefactory.errors import ServiceError

T = TypeVar("T")


def record_job(
    session: Session,
    *,
    dsn: str,
    operation: str,
    now: datetime,
    actor: Actor | None,
    action_id: int | None = None,
    error: ServiceError | None = None,
    message: str | None = None,
) -> None:
    queries.insert_jobs(
        session,
        [
            {
                "dsn": dsn,
                "action_id": action_id,
                "operation": operation,
                "result": JobResult.FAILURE if error else JobResult.SUCCESS,
                "error_code": error.code if error else None,
                "message": error.message if error else message,
                "created_by": actor.email if actor else None,
                "created_at": now,
            }
        ],
    )
    queries.set_last_job_failed(session, dsn, error is not None)


def run_as_job(
    session: Session,
    work: Callable[[], T],
    *,
    dsn: str,
    operation: str,
    now: datetime,
    actor: Actor,
    action_id: int | None = None,
    success_message: Callable[[T], str | None] = lambda _: None,
) -> T:
    """Run ``work`` in a savepoint; record its job whether it succeeds or is refused.

    A refusal rolls back the work but keeps the failed job: the error is marked
    so that the boundary commits that record.
    """
    try:
        with session.begin_nested():
            result = work()
    except ServiceError as error:
        record_job(
            session,
            dsn=dsn,
            operation=operation,
            now=now,
            actor=actor,
            action_id=action_id,
            error=error,
        )
        raise error.recorded() from None
    record_job(
        session,
        dsn=dsn,
        operation=operation,
        now=now,
        actor=actor,
        action_id=action_id,
        message=success_message(result),
    )
    return result
