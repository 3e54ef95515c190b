"""Factory-log uploads: accept the file, and work it line by line (§6, §7)."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, require
from devicefactory.actions.logfile import LineError, LogRecord, ParsedLine
from devicefactory.actions.models import ActionStatus, ActionType, FactoryAction
from devicefactory.devices import factory_data
from devicefactory.devices.factory_data import ConflictingValues, Options, Outcome
from devicefactory.devices.fields import is_missing
from devicefactory.errors import MissingAttributes, ServiceError, ValidationFailed

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


def work_line(
    session: Session, actor: Actor, action: FactoryAction, parsed: ParsedLine, now: datetime
) -> LineOutcome:
    """One line through the same service code as the single-device endpoints."""
    if isinstance(parsed, LineError):
        return LineOutcome(parsed.line_no, parsed.raw, None, "invalid", "AFS-600", parsed.message)
    dsn = parsed.fields.get("dsn") or None
    upload_type = action.upload_type or ""
    skip = _skip_reason(parsed, upload_type)
    if skip:
        return LineOutcome(parsed.line_no, parsed.raw, dsn, "skipped", None, skip)
    try:
        result = _apply(session, actor, action, parsed, now)
    except ConflictingValues as conflict:
        changes = "; ".join(change.describe() for change in conflict.changes)
        return LineOutcome(
            parsed.line_no, parsed.raw, dsn, "conflict", conflict.code, conflict.message, changes
        )
    except ServiceError as error:
        return LineOutcome(parsed.line_no, parsed.raw, dsn, "invalid", error.code, error.message)
    applied = "; ".join(change.describe() for change in result.changes) or None
    message = "already holds these values" if result.outcome is Outcome.IDENTICAL else None
    return LineOutcome(parsed.line_no, parsed.raw, dsn, result.outcome.value, None, message, applied)


def _skip_reason(record: LogRecord, upload_type: str) -> str | None:
    if record.status is None:  # a CSV row: always applied
        return None
    if record.err_code != 0:
        return f"err_code {record.err_code}: the line reports a failure"
    if record.status not in APPLIED_STATUSES[upload_type]:
        return f"status {record.status} is not applied by a {upload_type} upload"
    return None


def _apply(
    session: Session, actor: Actor, action: FactoryAction, record: LogRecord, now: datetime
) -> factory_data.Result:
    upload_type = action.upload_type
    if record.version is not None and record.version not in APPLIED_VERSIONS[upload_type or ""]:
        raise ValidationFailed.of([f"version {record.version} lines carry no {upload_type} data"])
    body: dict[str, object] = dict(record.fields)
    if upload_type == "provision" and is_missing(body.get("oem_host_version")) and action.oem_host_version:
        body["oem_host_version"] = action.oem_host_version
    dsn = str(body.pop("dsn", "") or "")
    if not dsn:
        raise MissingAttributes(["dsn"])
    options = Options(
        repeat_is_error=False, action_id=action.id, line_oem_id=str(body.pop("oem_id", "") or "")
    )
    operation = (
        factory_data.manufacture_device if upload_type == "manufacture" else factory_data.provision_device
    )
    return operation(session, actor, dsn=dsn, body=body, now=now, options=options)
