"""Jobs: every operation on a reachable device, refused or not, leaves one (§2)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.devices import queries
from devicefactory.devices.records import DeviceRecord
from devicefactory.errors import ServiceError
from devicefactory.tables.devices import Device, JobResult

T = TypeVar("T")


def job_row(
    device: Device | DeviceRecord,
    *,
    operation: str,
    now: datetime,
    actor: Actor | None,
    action_id: int | None = None,
    error: ServiceError | None = None,
    message: str | None = None,
    claimed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A job for ``device``; also marks whether its latest job failed (errors=failure).

    A refusal of a caller whose OEM neither reserved nor owns the device is recorded for
    that OEM alone and leaves the device's own record (errors=failure) as it was.
    """
    foreign = error is not None and is_foreign(device, actor)
    if not foreign:
        device.last_job_failed = error is not None
    return {
        "dsn": device.dsn,
        "action_id": action_id,
        "operation": operation,
        "result": JobResult.FAILURE if error else JobResult.SUCCESS,
        "error_code": error.code if error else None,
        "message": _printable(error.message if error else message),
        "created_by": actor.email if actor else None,
        "created_at": now,
        "visible_to_oem_id": actor.oem_id if foreign and actor else None,
        "claimed": json.dumps(dict(sorted(claimed.items()))) if error and claimed else None,
    }


def is_foreign(device: Device | DeviceRecord, actor: Actor | None) -> bool:
    """Whether ``actor`` is of an OEM that neither reserved nor owns ``device``."""
    if actor is None or actor.is_platform_admin:
        return False
    return actor.oem_id not in (device.reserved_by_oem_id, device.owner_oem_id)


def _printable(message: str | None) -> str | None:
    """Messages echo what callers sent; no database stores a NUL, and no log wants one."""
    if message is None or message.isprintable():
        return message
    return "".join(c if c.isprintable() else "\ufffd" for c in message)


def record_job(session: Session, device: Device, **job: Any) -> None:
    queries.insert_jobs(session, [job_row(device, **job)])


def run_as_job(
    session: Session,
    work: Callable[[], T],
    *,
    device: Device,
    operation: str,
    now: datetime,
    actor: Actor,
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
        record_job(session, device, operation=operation, now=now, actor=actor, error=error)
        raise error.recorded() from None
    record_job(session, device, operation=operation, now=now, actor=actor, message=success_message(result))
    return result
