"""Manufacture and provision: the rules of §4, one implementation for the API and uploads.

The rules (``decide_*``) read a device and a request body and either return what
to change or raise the AFS error; they do not touch the database. Two drivers run
them: one device per API call, and a batch of upload lines with everything the
rules need loaded in a few queries.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor, ModelKind, require
from devicefactory.device_fields import UNIQUE_FIELDS
from devicefactory.devices import fields as F
from devicefactory.devices import queries
from devicefactory.devices.jobs import job_row
from devicefactory.devices.queries import Reach
from devicefactory.devices.records import DeviceRecord
from devicefactory.errors import (
    AlreadyManufactured,
    AlreadyProvisioned,
    InvalidModel,
    MissingAttributes,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from devicefactory.tables.devices import Device, DeviceStatus


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    IDENTICAL = "identical"


@dataclass
class Change:
    name: str
    old: object
    new: object

    def describe(self) -> str:
        old = "(none)" if self.old is None else F.display(self.name, self.old) or "(none)"
        new = self.new if type(self.new) is str else F.display(self.name, self.new)
        return f"{self.name}: {old} -> {new}"


@dataclass
class Result:
    """What an operation did to a device (or, repeated on a finished one, that it was identical)."""

    device: DeviceRecord
    outcome: Outcome
    changes: list[Change] = field(default_factory=list)


class ConflictingValues(ValidationFailed):
    """The device already holds different values (an upload's ``conflict`` outcome)."""

    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        super().__init__(
            "There were some failures while processing: the device holds different values: "
            + "; ".join(change.describe() for change in changes)
        )


class DeviceRetired(ValidationFailed):
    """A retired DSN: its key is destroyed, nothing may be recorded for it again."""

    def __init__(self, dsn: str) -> None:
        super().__init__(
            f"There were some failures while processing: device {dsn} is retired "
            "(its key was destroyed; it can never be manufactured, provisioned or verified)"
        )


def refuse_retired(device: DeviceRecord | Device) -> None:
    if device.status == DeviceStatus.RETIRED:
        raise DeviceRetired(device.dsn)


class UniqueValues(Protocol):
    def holder(self, name: str, value: str) -> str | None:
        """The DSN that holds ``value`` in the unique field ``name``, if any."""


@dataclass(frozen=True)
class Request:
    """One manufacture or provision request: the API's body, or an upload line."""

    dsn: str
    body: Mapping[str, object]
    # Provision lines of a log carry the OEM they were made for (§7).
    line_oem_id: str | None = None


# --- the rules ----------------------------------------------------------------------


@dataclass
class Decision:
    outcome: Outcome
    values: dict[str, Any] = field(default_factory=dict)


def decide_manufacture(
    device: DeviceRecord,
    kind: ModelKind,
    body: Mapping[str, object],
    *,
    repeat_is_error: bool,
    unique: UniqueValues,
) -> Decision:
    missing = [name for name in F.MANUFACTURE_REQUIRED if F.is_missing(body.get(name))]
    if missing:
        raise MissingAttributes(missing)
    _check_model(device, kind, body["model"], allowed=frozenset({ModelKind.BLACK_BOX}))
    cleaned = F.clean_fields(body, F.MANUFACTURE_FIELDS)
    refuse_retired(device)
    if device.status != DeviceStatus.RESERVED:
        if repeat_is_error:
            raise AlreadyManufactured()
        return _compare(device, cleaned)
    F.check_date(cleaned)
    _check_failures(device, cleaned, unique)
    return Decision(Outcome.APPLIED, cleaned.values)


def decide_provision(
    device: DeviceRecord,
    kind: ModelKind,
    actor: Actor,
    request: Request,
    *,
    repeat_is_error: bool,
    unique: UniqueValues,
) -> Decision:
    body = request.body
    missing = _provision_missing(device, body, kind)
    if missing:
        raise MissingAttributes(missing)
    _check_model(device, kind, body["model"], allowed=actor.provisionable_kinds())
    cleaned = F.clean_fields(body, F.PROVISION_FIELDS)
    refuse_retired(device)
    if device.status == DeviceStatus.PROVISIONED:
        if repeat_is_error:
            raise AlreadyProvisioned()
        return _compare(device, cleaned)
    if kind is ModelKind.BLACK_BOX and device.status != DeviceStatus.MANUFACTURED:
        raise ValidationFailed.of([f"device {device.dsn} is not manufactured yet"])
    F.check_date(cleaned)
    _default_white_box_hwsig(device, cleaned, kind)
    if request.line_oem_id and request.line_oem_id != actor.oem_id:
        cleaned.failures.append(f"oem_id {request.line_oem_id} is not your OEM")
    _check_failures(device, cleaned, unique, keep_factory_values=True)
    return Decision(Outcome.APPLIED, cleaned.values)


def _provision_missing(device: DeviceRecord, body: Mapping[str, object], kind: ModelKind) -> list[str]:
    missing = []
    for name in F.PROVISION_TABLE_ORDER:
        if not F.is_missing(body.get(name)):
            continue
        if name in F.PROVISION_ALWAYS_REQUIRED or getattr(device, name) is None:
            if name == "hwsig" and kind is ModelKind.WHITE_BOX:
                continue  # defaults to mac-<mac>
            missing.append(name)
    return missing


def _default_white_box_hwsig(device: DeviceRecord, cleaned: F.CleanFields, kind: ModelKind) -> None:
    # Gateway log lines carry an empty hwsig; the seed's own example form is mac-<mac>.
    mac = cleaned.values.get("mac") or device.mac
    if kind is ModelKind.WHITE_BOX and "hwsig" not in cleaned.values and device.hwsig is None and mac:
        cleaned.values["hwsig"] = f"mac-{mac}"


def _check_model(
    device: DeviceRecord, kind: ModelKind, model: object, *, allowed: frozenset[ModelKind]
) -> None:
    """AFS-601 when the model is not the device's or not of a kind the caller may use."""
    if model != device.model or kind not in allowed:
        raise InvalidModel(model)


def _check_failures(
    device: DeviceRecord, cleaned: F.CleanFields, unique: UniqueValues, *, keep_factory_values: bool = False
) -> None:
    failures = list(cleaned.failures)
    if keep_factory_values:
        for name in F.FACTORY_FIELDS:
            current = getattr(device, name)
            if name in cleaned.values and current is not None and current != cleaned.values[name]:
                failures.append(f"{name} does not match the manufactured value {F.display(name, current)}")
    for name in UNIQUE_FIELDS:
        value = cleaned.values.get(name)
        if value is not None and unique.holder(name, value) not in (None, device.dsn):
            failures.append(f"{name} is already taken")
    if failures:
        raise ValidationFailed.of(failures)


def _compare(device: DeviceRecord, cleaned: F.CleanFields) -> Decision:
    """A repeat on a finished device: identical, or a conflict naming each field."""
    changes = [
        Change(name, getattr(device, name), value)
        for name, value in cleaned.values.items()
        if getattr(device, name) != value
    ]
    changes += [Change(name, getattr(device, name), value) for name, value in cleaned.bad_dates.items()]
    if changes:
        raise ConflictingValues(changes)
    return Decision(Outcome.IDENTICAL)


def apply_decision(
    device: DeviceRecord, decision: Decision, *, operation: str, owner: str | None, now: datetime
) -> Result:
    if decision.outcome is Outcome.IDENTICAL:
        return Result(device, Outcome.IDENTICAL)
    changes = []
    for name, value in decision.values.items():
        if getattr(device, name) != value:
            changes.append(Change(name, getattr(device, name), value))
            setattr(device, name, value)
    if operation == "manufacture":
        device.status, device.manufactured_at = DeviceStatus.MANUFACTURED, now
    else:
        device.status, device.provisioned_at, device.owner_oem_id = DeviceStatus.PROVISIONED, now, owner
    return Result(device, Outcome.APPLIED, changes)


# --- the drivers --------------------------------------------------------------------


class Overlay(Protocol):
    """What the earlier lines of a validate would have changed, which the database never saw.

    Validate writes nothing, so without this a line would not see an earlier batch's
    claim of a mac, or its manufacture of a DSN, that submit will have committed by then.
    """

    def changes_of(self, dsns: Collection[str]) -> dict[str, dict[str, Any]]:
        """The values earlier lines would have given each of ``dsns`` (those they touched)."""

    def holders_of(self, values: Mapping[str, set[str]]) -> dict[tuple[str, str], str]:
        """Which DSN earlier lines would have given each unique value (``mac``, ``hwsig``)."""


@dataclass
class Batch:
    """Everything the rules need for a set of requests, loaded in a few queries."""

    devices: dict[str, DeviceRecord]
    kinds: dict[str, ModelKind]
    holders: dict[tuple[str, str], str]
    # Each device's status as stored, before this batch (and any overlay) changed it.
    stored_status: dict[str, str] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def holder(self, name: str, value: str) -> str | None:
        return self.holders.get((name, value))

    def claim(self, device: DeviceRecord) -> None:
        """Later requests of the same batch see the values this one took."""
        for name in UNIQUE_FIELDS:
            value = getattr(device, name)
            if value is not None:
                self.holders[(name, value)] = device.dsn


_REACH = {"manufacture": Reach.MANUFACTURE, "provision": Reach.PROVISION}


def load_batch(
    session: Session,
    actor: Actor,
    operation: str,
    requests: Sequence[Request],
    *,
    also: Sequence[str] = (),
    lock: bool = True,
    overlay: Overlay | None = None,
) -> Batch:
    """The devices of ``requests`` (and of ``also``) the actor reaches, the holders of their
    unique values and the model kinds; ``lock`` holds the devices' rows until commit."""
    reach = _REACH[operation]
    devices, model_kinds = queries.find_devices_and_kinds(
        session, actor, [*(r.dsn for r in requests), *also], reach, lock=lock
    )
    stored_status = {dsn: device.status for dsn, device in devices.items()}
    if overlay is not None:
        for dsn, changes in overlay.changes_of(list(devices)).items():
            for name, value in changes.items():
                setattr(devices[dsn], name, value)
    values = {
        name: {v for r in requests if (v := F.clean_unique(name, r.body.get(name)))} for name in UNIQUE_FIELDS
    }
    # White-box provisions without a hwsig take mac-<mac> (and the device's own mac).
    macs = values["mac"] | {d.mac for d in devices.values() if d.mac}
    values["hwsig"] |= {f"mac-{mac}" for mac in macs}
    holders = overlay.holders_of(values) if overlay is not None else {}
    holders.update(queries.unique_holders(session, values))  # what is stored wins
    kinds = {name: ModelKind(kind) for name, kind in model_kinds.items()}
    return Batch(devices, kinds, holders, stored_status)


def run_requests(
    session: Session,
    actor: Actor,
    operation: str,
    requests: Sequence[Request],
    *,
    now: datetime,
    repeat_is_error: bool,
    action_id: int | None = None,
    batch: Batch | None = None,
    write: bool = True,
) -> list[Result | ServiceError]:
    """Apply each request in order (a refused one changes nothing); jobs for every reachable device.

    With ``write`` False (validate) the same rules run on the same records, and nothing,
    not even a job, is written.
    """
    require(actor.may_manufacture if operation == "manufacture" else actor.may_provision)
    batch = batch or load_batch(session, actor, operation, requests)
    results: list[Result | ServiceError] = []
    for request in requests:
        results.append(_run_one(batch, actor, operation, request, now, repeat_is_error, action_id))
    if write:
        queries.update_devices(session, batch.devices.values())
        queries.insert_jobs(session, batch.jobs)
    return results


def _run_one(
    batch: Batch,
    actor: Actor,
    operation: str,
    request: Request,
    now: datetime,
    repeat_is_error: bool,
    action_id: int | None,
) -> Result | ServiceError:
    device = batch.devices.get(request.dsn)
    if device is None:
        return NotFound(f"Device {request.dsn} not found")
    job: Callable[..., dict[str, Any]] = lambda **kw: job_row(  # noqa: E731
        device, operation=operation, now=now, actor=actor, action_id=action_id, **kw
    )
    try:
        kind = batch.kinds[device.model]
        if operation == "manufacture":
            decision = decide_manufacture(
                device, kind, request.body, repeat_is_error=repeat_is_error, unique=batch
            )
        else:
            decision = decide_provision(
                device, kind, actor, request, repeat_is_error=repeat_is_error, unique=batch
            )
    except ServiceError as error:
        batch.jobs.append(job(error=error, claimed=claimed_identifiers(request.body)))
        return error
    owner = actor.oem_id if not actor.is_platform_admin else device.reserved_by_oem_id
    result = apply_decision(device, decision, operation=operation, owner=owner, now=now)
    batch.claim(device)
    batch.jobs.append(job(message=result.outcome.value))
    return result


def claimed_identifiers(body: Mapping[str, object]) -> dict[str, str]:
    """The unique values (mac, hwsig) a call claimed, cleaned as the rules clean them: kept
    with a refusal as the anomalies' evidence."""
    return {name: value for name in UNIQUE_FIELDS if (value := F.clean_unique(name, body.get(name)))}


def manufacture_device(
    session: Session, actor: Actor, *, dsn: str, body: Mapping[str, object], now: datetime
) -> Result:
    """The seed's manufacture call: one request, errors raised as the API reports them."""
    return _single(session, actor, "manufacture", Request(dsn, body), now)


def provision_device(
    session: Session, actor: Actor, *, dsn: str, body: Mapping[str, object], now: datetime
) -> Result:
    return _single(session, actor, "provision", Request(dsn, body), now)


def _single(session: Session, actor: Actor, operation: str, request: Request, now: datetime) -> Result:
    try:
        (result,) = run_requests(session, actor, operation, [request], now=now, repeat_is_error=True)
    except IntegrityError:
        # A concurrent request took the same mac or hwsig between our check and our write
        # (PostgreSQL; SQLite's single writer excludes it). The request's transaction holds
        # this call's work alone: roll it back whole (cheaper than a savepoint around every
        # call) and record the refusal in a fresh one.
        session.rollback()
        error = ValidationFailed.of(["mac or hwsig is already taken"])
        device = queries.find_devices(session, actor, [request.dsn], _REACH[operation]).get(request.dsn)
        if device is not None:
            claimed = claimed_identifiers(request.body)
            row = job_row(device, operation=operation, now=now, actor=actor, error=error, claimed=claimed)
            queries.insert_jobs(session, [row])
            queries.update_devices(session, [device])
        raise error.recorded() from None
    if isinstance(result, NotFound):
        raise result  # nothing reachable: no job was recorded
    if isinstance(result, ServiceError):
        raise result.recorded()  # the failed job must be committed with the refusal
    return result
