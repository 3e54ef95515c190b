"""The refusals the anomalies are read from, a keyset page at a time (SPEC §13).

Every anomaly is a refusal the service already recorded: an upload line (``action_lines``:
outcome, message, the changes a conflict named, the raw line) or the failed job of an API
call (``jobs``: error code and message only). A list reads both sources, newest first: one
query per source with a LIMIT, and a cursor that remembers where each source stands, so no
page reads more than ``limit`` refusals of each.

The tenant wall (docs/anomalies.md): an OEM sees the lines of its own actions
(``tenancy.visible_actions``) and the jobs its device history shows it
(``devices.queries.reachable`` and the job's ``visible_to_oem_id``, as ``jobs_of`` does).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.accounts.schemas import iso
from devicefactory.actions.outcomes import FAILED_OUTCOMES
from devicefactory.devices.queries import Reach, reachable
from devicefactory.errors import ValidationFailed
from devicefactory.reports import evidence as E
from devicefactory.reports.schemas import Evidence
from devicefactory.tables.accounts import User
from devicefactory.tables.actions import ActionLine, FactoryAction
from devicefactory.tables.devices import Device, Job, JobResult
from devicefactory.tenancy import visible_actions

# --- cursors: where each source of a list stands ---------------------------------------

END: Final = "end"
LinePos = tuple[int, int] | None | Literal["end"]  # (action id, line no) of the last line shown
JobPos = int | None | Literal["end"]  # id of the last job shown


@dataclass(frozen=True)
class Position:
    line: LinePos = None
    job: JobPos = None

    @property
    def at_end(self) -> bool:
        return self.line == END and self.job == END

    def encode(self) -> str:
        text = json.dumps({"l": self.line, "j": self.job}, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, name: str, cursor: str | None) -> Position:
        if not cursor:
            return cls()
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            line, job = data["l"], data["j"]
        except (binascii.Error, ValueError, TypeError, KeyError):
            raise ValidationFailed.of([f"{name} is not a cursor of this list"]) from None
        line_ok = line in (None, END) or (
            isinstance(line, list) and len(line) == 2 and all(type(v) is int for v in line)
        )
        if not line_ok or not (job in (None, END) or type(job) is int):
            raise ValidationFailed.of([f"{name} is not a cursor of this list"])
        return cls((line[0], line[1]) if isinstance(line, list) else line, job)


# --- the refusals, as read from either source -------------------------------------------


@dataclass
class Refusal:
    """One refused line or call: its DSN, its evidence, and what the list reads from it."""

    dsn: str
    evidence: Evidence
    when: datetime | None
    position: tuple[int, int] | int
    line: ActionLine | None = None
    action: FactoryAction | None = None
    job: Job | None = None


def TAKEN_LINES() -> ColumnElement[bool]:
    """Lines refused because a mac or hwsig was taken."""
    return and_(ActionLine.outcome.in_(FAILED_OUTCOMES), ActionLine.message.like(f"%{E.TAKEN}%"))


def TAKEN_JOBS() -> ColumnElement[bool]:
    return and_(Job.operation.in_(("manufacture", "provision")), Job.message.like(f"%{E.TAKEN}%"))


def CONFLICT_LINES() -> ColumnElement[bool]:
    """Lines that claimed a finished device with other values, or other manufactured values."""
    return or_(
        ActionLine.outcome == "conflict",
        and_(ActionLine.outcome == "invalid", ActionLine.message.like(f"%{E.MISMATCH}%")),
    )


def CONFLICT_JOBS() -> ColumnElement[bool]:
    """AFS-606 (manufactured again), and provisions whose factory values differ."""
    return or_(
        and_(Job.operation == "manufacture", Job.error_code == "AFS-606"),
        and_(Job.operation == "provision", Job.message.like(f"%{E.MISMATCH}%")),
    )


def VERIFY_JOBS() -> ColumnElement[bool]:
    return Job.operation == "verify"


def _visible_jobs(actor: Actor) -> ColumnElement[bool]:
    """The jobs the caller's device history shows it, and its own refused calls (§11)."""
    if actor.is_platform_admin:
        return true()
    seen = select(Device.dsn).where(reachable(actor, Reach.VIEW))
    return or_(
        Job.visible_to_oem_id == actor.oem_id,
        and_(Job.visible_to_oem_id.is_(None), Job.dsn.in_(seen)),
    )


def _lines(
    session: Session, actor: Actor, which: ColumnElement[bool], after: LinePos, limit: int
) -> list[Refusal]:
    """Refused lines of the caller's actions, newest action first, from the (action, line) key."""
    if after == END:
        return []
    query = (
        select(ActionLine, FactoryAction)
        .join(FactoryAction, FactoryAction.id == ActionLine.action_id)
        # Only actions that counted a failed line: the others need not be read at all.
        .where(visible_actions(actor), or_(FactoryAction.conflict > 0, FactoryAction.invalid > 0))
        .where(which, ActionLine.dsn.is_not(None))
    )
    if isinstance(after, tuple):
        action_id, line_no = after
        query = query.where(
            or_(
                ActionLine.action_id < action_id,
                and_(ActionLine.action_id == action_id, ActionLine.line_no < line_no),
            )
        )
    query = query.order_by(ActionLine.action_id.desc(), ActionLine.line_no.desc()).limit(limit)
    rows = session.execute(query).all()
    jobs = _jobs_of_lines(session, [line for line, _ in rows])
    return [_line_refusal(line, action, jobs.get((action.id, line.dsn or ""), [])) for line, action in rows]


def _jobs_of_lines(session: Session, lines: Sequence[ActionLine]) -> dict[tuple[int, str], list[Job]]:
    """The failed jobs the lines' actions recorded on the lines' devices."""
    if not lines:
        return {}
    query = select(Job).where(
        Job.action_id.in_({line.action_id for line in lines}),
        Job.dsn.in_({line.dsn for line in lines if line.dsn}),
        Job.result == JobResult.FAILURE,
    )
    found: dict[tuple[int, str], list[Job]] = {}
    for job in session.scalars(query.order_by(Job.id)):
        found.setdefault((job.action_id or 0, job.dsn), []).append(job)
    return found


def _line_refusal(line: ActionLine, action: FactoryAction, jobs: list[Job]) -> Refusal:
    when = jobs[0].created_at if jobs else (action.started_at or action.created_at)
    evidence = Evidence(
        source="validate" if action.validate_only else "upload",
        action_id=action.id,
        line_no=line.line_no,
        outcome=line.outcome,
        job_ids=[job.id for job in jobs],
        at=iso(when),
        created_by=action.created_by,
        oem_id=action.oem_id,
        error_code=line.error_code,
        message=line.message,
    )
    return Refusal(line.dsn or "", evidence, when, (action.id, line.line_no), line=line, action=action)


def _jobs(
    session: Session, actor: Actor, which: ColumnElement[bool], before: JobPos, limit: int
) -> list[Refusal]:
    """Failed API calls (jobs without an action) the caller may see, newest first."""
    if before == END:
        return []
    query = (
        select(Job, User.oem_id)
        .outerjoin(User, User.email == Job.created_by)
        .where(Job.action_id.is_(None), Job.result == JobResult.FAILURE, which, _visible_jobs(actor))
    )
    if before is not None:
        query = query.where(Job.id < before)
    rows = session.execute(query.order_by(Job.id.desc()).limit(limit)).all()
    return [_job_refusal(job, oem_id) for job, oem_id in rows]


def _job_refusal(job: Job, oem_id: str | None) -> Refusal:
    evidence = Evidence(
        source="api",
        action_id=None,
        line_no=None,
        outcome=None,
        job_ids=[job.id],
        at=iso(job.created_at),
        created_by=job.created_by,
        oem_id=oem_id,
        error_code=job.error_code,
        message=job.message,
    )
    return Refusal(job.dsn, evidence, job.created_at, job.id, job=job)


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def refusal_page(
    session: Session,
    actor: Actor,
    *,
    name: str,
    cursor: str | None,
    limit: int,
    lines: ColumnElement[bool] | None,
    jobs: ColumnElement[bool],
) -> tuple[list[Refusal], str | None]:
    """One page of a list: both sources read from where the cursor left them, merged by time."""
    position = Position.decode(name, cursor)
    if lines is None:
        position = Position(END, position.job)
    from_lines = [] if lines is None else _lines(session, actor, lines, position.line, limit)
    from_jobs = _jobs(session, actor, jobs, position.job, limit)
    page: list[Refusal] = []
    i = j = 0
    while len(page) < limit and (i < len(from_lines) or j < len(from_jobs)):
        line_first = j >= len(from_jobs) or (
            i < len(from_lines) and (from_lines[i].when or _EARLIEST) >= (from_jobs[j].when or _EARLIEST)
        )
        if line_first:
            page.append(from_lines[i])
            i += 1
        else:
            page.append(from_jobs[j])
            j += 1
    after = Position(
        cast(LinePos, _advance(position.line, from_lines, i, limit)),
        cast(JobPos, _advance(position.job, from_jobs, j, limit)),
    )
    return page, None if after.at_end else after.encode()


def _advance(previous: Any, fetched: list[Refusal], used: int, limit: int) -> Any:
    if previous == END or (used == len(fetched) and len(fetched) < limit):
        return END
    return previous if used == 0 else fetched[used - 1].position
