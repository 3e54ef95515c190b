"""Factory-log uploads: accept the file, and work it line by line (§6, §7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import BinaryIO, Protocol

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, require
from devicefactory.actions.logfile import LineError, LogRecord, ParsedLine, UploadScan
from devicefactory.actions.outcomes import LineOutcome
from devicefactory.actions.overlay import StoredOverlay
from devicefactory.devices import factory_data
from devicefactory.devices.factory_data import ConflictingValues, Outcome, Request, Result
from devicefactory.devices.fields import is_missing
from devicefactory.devices.queries import plausible_dsn
from devicefactory.devices.records import DeviceRecord
from devicefactory.devices.service import RETIRED_MESSAGES, may_retire, retire_devices
from devicefactory.errors import MissingAttributes, NotFound, ServiceError, ValidationFailed
from devicefactory.storage import FileStore
from devicefactory.tables.actions import ActionStatus, ActionType, FactoryAction

UPLOAD_TYPES = ("manufacture", "provision", "retire")
# Which log lines an upload applies (§7); other statuses are skipped.
APPLIED_STATUSES = {"manufacture": ("label", "config"), "provision": ("config", "assign")}
APPLIED_VERSIONS = {"manufacture": (2, 3, 4), "provision": (3, 4)}


def create_upload_action(
    session: Session,
    actor: Actor,
    *,
    upload_type: str,
    validate_only: bool,
    file_name: str,
    stream: BinaryIO,
    store: FileStore,
    oem_host_version: str | None,
    now: datetime,
    max_lines: int = 1_000_000,
) -> FactoryAction:
    """Store the upload and queue its action; the runner works it in the background."""
    if upload_type not in UPLOAD_TYPES:
        raise ValidationFailed.of([f"type must be one of {', '.join(UPLOAD_TYPES)}"])
    require(may_retire(actor) if upload_type == "retire" else actor.may_upload(upload_type))
    if oem_host_version is not None and (len(oem_host_version) > 255 or not oem_host_version.isprintable()):
        raise ValidationFailed.of(["oem_host_version must be at most 255 printable characters"])
    file_id, scan = _store(stream, store, max_lines, dsn_list=upload_type == "retire")
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
        file_id=file_id,
        file_format=scan.format.value if scan.format else None,
        file_header=scan.header,
        lines_total=scan.lines,
        oem_host_version=oem_host_version or None,
    )
    session.add(action)
    session.flush()
    return action


def _store(stream: BinaryIO, store: FileStore, max_lines: int, *, dsn_list: bool) -> tuple[str, UploadScan]:
    """Keep the upload (in the database), refusing one without device lines or with too
    many (§11) before any action exists."""
    scan = UploadScan(dsn_list=dsn_list)

    def inspect(chunk: bytes) -> None:
        if chunk:
            scan.feed(chunk)
        else:
            scan.finish()
        if scan.device_lines > max_lines:
            raise ValidationFailed.of([f"the file holds more than {max_lines} device lines"])
        if not chunk and scan.device_lines == 0:
            raise ValidationFailed.of(["the file holds no device lines"])

    return store.save(stream, inspect), scan


def work_lines(
    session: Session, actor: Actor, action: FactoryAction, lines: Sequence[ParsedLine], now: datetime
) -> list[LineOutcome]:
    """A batch of lines through the same rules as the single-device endpoints.

    A validate runs the same rules on the same records and writes nothing but its
    overlay, so that its later batches see what this one would have changed, as submit's do.
    """
    upload_type = action.upload_type or ""
    validate = action.validate_only
    outcomes: dict[int, LineOutcome] = {}
    requests: list[tuple[LogRecord, Request]] = []
    for line in lines:
        early = _early_outcome(line, upload_type)
        if early is not None:
            outcomes[line.line_no] = early
        else:
            assert isinstance(line, LogRecord)
            requests.append((line, _request(line, action)))
    overlay = StoredOverlay(session, action.id) if validate else None
    also = [o.dsn for o in outcomes.values() if o.dsn]
    work = _retire if upload_type == "retire" else _apply
    batch = work(session, actor, action, [request for _, request in requests], also, overlay, now)
    if overlay is not None:
        applied = [r.device for r in batch.results if isinstance(r, Result) and r.outcome is Outcome.APPLIED]
        overlay.remember({device.dsn: device for device in applied}.values())
    for line_no, early in outcomes.items():
        model, status = _device_state(batch, early.dsn, validate=validate)
        outcomes[line_no] = replace(early, model=model, device_status=status)
    for (record, request), result in zip(requests, batch.results, strict=True):
        model, status = _device_state(batch, request.dsn, validate=validate)
        outcome = _line_outcome(record, request.dsn, result, model, status)
        if upload_type == "retire" and outcome.outcome == Outcome.IDENTICAL:
            outcome = replace(outcome, message=RETIRED_MESSAGES[Outcome.IDENTICAL])
        outcomes[record.line_no] = outcome
    return [outcomes[line.line_no] for line in lines]


class _Worked(Protocol):
    """What a batch of requests did: the devices as they now are, and per request a result."""

    @property
    def devices(self) -> Mapping[str, DeviceRecord]: ...
    @property
    def stored_status(self) -> Mapping[str, str]: ...
    @property
    def results(self) -> Sequence[Result | ServiceError]: ...


@dataclass(frozen=True)
class _Applied:
    devices: Mapping[str, DeviceRecord]
    stored_status: Mapping[str, str]
    results: Sequence[Result | ServiceError]


def _apply(
    session: Session,
    actor: Actor,
    action: FactoryAction,
    requests: Sequence[Request],
    also: Sequence[str],
    overlay: StoredOverlay | None,
    now: datetime,
) -> _Worked:
    """Manufacture or provision lines, through the API's rules (factory_data)."""
    upload_type, validate = action.upload_type or "", action.validate_only
    batch = factory_data.load_batch(
        session, actor, upload_type, requests, also=also, lock=not validate, overlay=overlay
    )
    results = factory_data.run_requests(
        session,
        actor,
        upload_type,
        requests,
        now=now,
        repeat_is_error=False,
        action_id=action.id,
        batch=batch,
        write=not validate,
    )
    return _Applied(batch.devices, batch.stored_status, results)


def _retire(
    session: Session,
    actor: Actor,
    action: FactoryAction,
    requests: Sequence[Request],
    also: Sequence[str],
    overlay: StoredOverlay | None,
    now: datetime,
) -> _Worked:
    """Retire lines, through the API's rule (devices.service.retire_devices)."""
    return retire_devices(
        session,
        actor,
        [request.dsn for request in requests],
        now=now,
        repeat_is_error=False,
        action_id=action.id,
        also=also,
        write=not action.validate_only,
        overlay=overlay,
    )


def _device_state(batch: _Worked, dsn: str | None, *, validate: bool) -> tuple[str | None, str | None]:
    """The device's model and status after the line (a validate changed nothing)."""
    device = batch.devices.get(dsn or "")
    if device is None:
        return None, None
    return device.model, batch.stored_status[device.dsn] if validate else device.status


def _early_outcome(line: ParsedLine, upload_type: str) -> LineOutcome | None:
    """Lines decided without the database: parse errors, skipped lines, missing DSNs."""
    if isinstance(line, LineError):
        dsn = line.dsn if line.dsn and plausible_dsn(line.dsn) else None
        refused = ValidationFailed.of([line.message])
        return LineOutcome(line.line_no, line.raw, dsn, "invalid", refused.code, refused.message)
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


def _line_outcome(
    record: LogRecord,
    dsn: str,
    result: factory_data.Result | ServiceError,
    model: str | None,
    status: str | None,
) -> LineOutcome:
    line_no, raw = record.line_no, record.raw
    device = {"model": model, "device_status": status}
    if isinstance(result, ConflictingValues):
        changes = "; ".join(change.describe() for change in result.changes)
        return LineOutcome(line_no, raw, dsn, "conflict", result.code, result.message, changes, **device)
    if isinstance(result, ServiceError):
        return LineOutcome(line_no, raw, dsn, "invalid", result.code, result.message, **device)
    applied = "; ".join(change.describe() for change in result.changes) or None
    message = "already holds these values" if result.outcome is Outcome.IDENTICAL else None
    return LineOutcome(line_no, raw, dsn, result.outcome.value, None, message, applied, **device)
