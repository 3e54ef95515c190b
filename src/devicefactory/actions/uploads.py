"""Factory-log uploads: accept the file, and work it line by line (§6, §7)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, require
from devicefactory.actions.logfile import LineError, LogRecord, ParsedLine
from devicefactory.actions.models import ActionStatus, ActionType, FactoryAction
from devicefactory.devices import factory_data
from devicefactory.devices.factory_data import ConflictingValues, Outcome, Request
from devicefactory.devices.fields import is_missing
from devicefactory.devices.queries import plausible_dsn
from devicefactory.errors import MissingAttributes, NotFound, ServiceError, ValidationFailed

UPLOAD_TYPES = ("manufacture", "provision")
# Which log lines an upload applies (§7); other statuses are skipped.
APPLIED_STATUSES = {"manufacture": ("label", "config"), "provision": ("config", "assign")}
APPLIED_VERSIONS = {"manufacture": (2, 3, 4), "provision": (3, 4)}
COPY_CHUNK = 1024 * 1024


def create_upload_action(
    session: Session,
    actor: Actor,
    *,
    upload_type: str,
    validate_only: bool,
    file_name: str,
    stream: BinaryIO,
    upload_dir: Path,
    oem_host_version: str | None,
    now: datetime,
) -> FactoryAction:
    """Store the upload and queue its action; the runner works it in the background."""
    if upload_type not in UPLOAD_TYPES:
        raise ValidationFailed.of([f"type must be one of {', '.join(UPLOAD_TYPES)}"])
    require(actor.may_upload(upload_type))
    if oem_host_version is not None and (len(oem_host_version) > 255 or not oem_host_version.isprintable()):
        raise ValidationFailed.of(["oem_host_version must be at most 255 printable characters"])
    path = _store(stream, upload_dir)
    action = FactoryAction(
        type=ActionType.VALIDATE if validate_only else upload_type,
        status=ActionStatus.PENDING,
        oem_id=actor.oem_id,
        created_by=actor.email,
        created_by_user_id=actor.user_id,
        created_at=now,
        upload_type=upload_type,
        validate_only=validate_only,
        file_name=(file_name or "upload")[:255],
        file_path=str(path),
        oem_host_version=oem_host_version or None,
    )
    session.add(action)
    session.flush()
    return action


def _store(stream: BinaryIO, upload_dir: Path) -> Path:
    upload_dir.mkdir(parents=True, exist_ok=True)
    path = upload_dir / f"{uuid.uuid4().hex}.upload"
    with path.open("xb") as target:
        shutil.copyfileobj(stream, target, COPY_CHUNK)
    return path.resolve()


@dataclass(frozen=True)
class LineOutcome:
    line_no: int
    raw: str
    dsn: str | None
    outcome: str  # applied | identical | conflict | invalid | skipped
    error_code: str | None = None
    message: str | None = None
    changes: str | None = None


def work_lines(
    session: Session, actor: Actor, action: FactoryAction, lines: Sequence[ParsedLine], now: datetime
) -> list[LineOutcome]:
    """A batch of lines through the same rules as the single-device endpoints."""
    upload_type = action.upload_type or ""
    outcomes: dict[int, LineOutcome] = {}
    requests: list[tuple[LogRecord, Request]] = []
    for line in lines:
        early = _early_outcome(line, upload_type)
        if early is not None:
            outcomes[line.line_no] = early
        else:
            assert isinstance(line, LogRecord)
            requests.append((line, _request(line, action)))
    results = factory_data.run_requests(
        session,
        actor,
        upload_type,
        [request for _, request in requests],
        now=now,
        repeat_is_error=False,
        action_id=action.id,
    )
    for (record, request), result in zip(requests, results, strict=True):
        outcomes[record.line_no] = _line_outcome(record, request.dsn, result)
    return [outcomes[line.line_no] for line in lines]


def _early_outcome(line: ParsedLine, upload_type: str) -> LineOutcome | None:
    """Lines decided without the database: parse errors, skipped lines, missing DSNs."""
    if isinstance(line, LineError):
        return LineOutcome(line.line_no, line.raw, None, "invalid", "AFS-600", line.message)
    dsn = line.fields.get("dsn") or None
    if line.status is not None and line.err_code != 0:
        return LineOutcome(
            line.line_no,
            line.raw,
            dsn,
            "skipped",
            None,
            f"err_code {line.err_code}: the line reports a failure",
        )
    if line.status is not None and line.status not in APPLIED_STATUSES[upload_type]:
        return LineOutcome(
            line.line_no,
            line.raw,
            dsn,
            "skipped",
            None,
            f"status {line.status} is not applied by a {upload_type} upload",
        )
    if line.version is not None and line.version not in APPLIED_VERSIONS[upload_type]:
        error: ServiceError = ValidationFailed.of(
            [f"version {line.version} lines carry no {upload_type} data"]
        )
        return LineOutcome(line.line_no, line.raw, dsn, "invalid", error.code, error.message)
    if not dsn:
        error = MissingAttributes(["dsn"])
        return LineOutcome(line.line_no, line.raw, None, "invalid", error.code, error.message)
    if not plausible_dsn(dsn):
        # Never issued, so not found; and too long for the outcome's dsn column.
        error = NotFound(f"Device {dsn[:40]} not found")
        return LineOutcome(line.line_no, line.raw, None, "invalid", error.code, error.message)
    return None


def _request(record: LogRecord, action: FactoryAction) -> Request:
    body: dict[str, object] = dict(record.fields)
    if (
        action.upload_type == "provision"
        and is_missing(body.get("oem_host_version"))
        and action.oem_host_version
    ):
        body["oem_host_version"] = action.oem_host_version
    dsn = str(body.pop("dsn"))
    return Request(dsn, body, line_oem_id=str(body.pop("oem_id", "") or "") or None)


def _line_outcome(record: LogRecord, dsn: str, result: factory_data.Result | ServiceError) -> LineOutcome:
    if isinstance(result, ConflictingValues):
        changes = "; ".join(change.describe() for change in result.changes)
        return LineOutcome(record.line_no, record.raw, dsn, "conflict", result.code, result.message, changes)
    if isinstance(result, ServiceError):
        return LineOutcome(record.line_no, record.raw, dsn, "invalid", result.code, result.message)
    applied = "; ".join(change.describe() for change in result.changes) or None
    message = "already holds these values" if result.outcome is Outcome.IDENTICAL else None
    return LineOutcome(record.line_no, record.raw, dsn, result.outcome.value, None, message, applied)
