"""Manufacture and provision: the rules of §4, shared by the API and log uploads."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from devicefactory.accounts import queries as accounts_queries
from devicefactory.accounts.policy import Actor, ModelKind, require
from devicefactory.devices import fields as F
from devicefactory.devices import queries
from devicefactory.devices.jobs import run_as_job
from devicefactory.devices.models import Device, DeviceStatus
from devicefactory.devices.queries import Reach
from devicefactory.errors import (
    AlreadyManufactured,
    AlreadyProvisioned,
    InvalidModel,
    MissingAttributes,
    NotFound,
    ValidationFailed,
)


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    IDENTICAL = "identical"
    CONFLICT = "conflict"


@dataclass
class Change:
    name: str
    old: object
    new: object

    def describe(self) -> str:
        return (
            f"{self.name}: {F.display(self.name, self.old) or '(none)'} -> {F.display(self.name, self.new)}"
        )


@dataclass
class Result:
    """What an operation did (or, repeated on a finished device, would do)."""

    device: Device
    outcome: Outcome
    changes: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """How a repeat on a device that is already done is treated.

    The API answers AFS-606/609 as the seed says; uploads report ``identical`` or
    ``conflict`` instead, so re-uploading a fixed file is safe.
    """

    repeat_is_error: bool = True
    action_id: int | None = None
    # Provision lines of a log carry the OEM they were made for.
    line_oem_id: str | None = None


API = Options()


def manufacture_device(
    session: Session,
    actor: Actor,
    *,
    dsn: str,
    body: Mapping[str, object],
    now: datetime,
    options: Options = API,
) -> Result:
    require(actor.may_manufacture)
    device = _reach(session, actor, dsn, Reach.MANUFACTURE)
    return run_as_job(
        session,
        lambda: _manufacture(session, device, body, now, options),
        dsn=device.dsn,
        operation="manufacture",
        now=now,
        actor=actor,
        action_id=options.action_id,
        success_message=_summary,
    )


def provision_device(
    session: Session,
    actor: Actor,
    *,
    dsn: str,
    body: Mapping[str, object],
    now: datetime,
    options: Options = API,
) -> Result:
    require(actor.may_provision)
    device = _reach(session, actor, dsn, Reach.PROVISION)
    return run_as_job(
        session,
        lambda: _provision(session, actor, device, body, now, options),
        dsn=device.dsn,
        operation="provision",
        now=now,
        actor=actor,
        action_id=options.action_id,
        success_message=_summary,
    )


def _reach(session: Session, actor: Actor, dsn: str, reach: Reach) -> Device:
    device = queries.find_device(session, actor, dsn, reach, lock=True)
    if device is None:
        raise NotFound(f"Device {dsn} not found")
    return device


def _summary(result: Result) -> str:
    return result.outcome.value


# --- manufacture --------------------------------------------------------------------


def _manufacture(
    session: Session, device: Device, body: Mapping[str, object], now: datetime, options: Options
) -> Result:
    missing = [name for name in F.MANUFACTURE_REQUIRED if F.is_missing(body.get(name))]
    if missing:
        raise MissingAttributes(missing)
    _check_model(session, device, body["model"], allowed=frozenset({ModelKind.BLACK_BOX}))
    cleaned = F.clean_fields(body, F.MANUFACTURE_REQUIRED[1:] + F.MANUFACTURE_OPTIONAL)
    if device.status != DeviceStatus.RESERVED:
        if options.repeat_is_error:
            raise AlreadyManufactured()
        return _compare(device, cleaned)
    F.check_date(cleaned)
    _check_failures(session, device, cleaned)
    changes = _assign(device, cleaned.values)
    device.status = DeviceStatus.MANUFACTURED
    device.manufactured_at = now
    session.flush()
    return Result(device, Outcome.APPLIED, changes)


# --- provision ----------------------------------------------------------------------


def _provision(
    session: Session,
    actor: Actor,
    device: Device,
    body: Mapping[str, object],
    now: datetime,
    options: Options,
) -> Result:
    kind = _model_kind(session, device)
    missing = _provision_missing(device, body, kind)
    if missing:
        raise MissingAttributes(missing)
    _check_model(session, device, body["model"], allowed=actor.provisionable_kinds())
    names = tuple(n for n in F.PROVISION_TABLE_ORDER + F.PROVISION_OPTIONAL if n != "model")
    cleaned = F.clean_fields(body, names)
    if device.status == DeviceStatus.PROVISIONED:
        if options.repeat_is_error:
            raise AlreadyProvisioned()
        return _compare(device, cleaned)
    if kind is ModelKind.BLACK_BOX and device.status != DeviceStatus.MANUFACTURED:
        raise ValidationFailed.of([f"device {device.dsn} is not manufactured yet"])
    F.check_date(cleaned)
    _default_white_box_hwsig(device, cleaned, kind)
    _check_line_oem(actor, options, cleaned)
    _check_failures(session, device, cleaned, keep_factory_values=True)
    changes = _assign(device, cleaned.values)
    device.status = DeviceStatus.PROVISIONED
    device.provisioned_at = now
    device.owner_oem_id = actor.oem_id if not actor.is_platform_admin else device.reserved_by_oem_id
    session.flush()
    return Result(device, Outcome.APPLIED, changes)


def _provision_missing(device: Device, body: Mapping[str, object], kind: ModelKind) -> list[str]:
    missing = []
    for name in F.PROVISION_TABLE_ORDER:
        if not F.is_missing(body.get(name)):
            continue
        if name in F.PROVISION_ALWAYS_REQUIRED or getattr(device, name) is None:
            if name == "hwsig" and kind is ModelKind.WHITE_BOX:
                continue  # defaults to mac-<mac>
            missing.append(name)
    return missing


def _default_white_box_hwsig(device: Device, cleaned: F.CleanFields, kind: ModelKind) -> None:
    # Gateway log lines carry an empty hwsig; the seed's own example form is mac-<mac>.
    mac = cleaned.values.get("mac") or device.mac
    if kind is ModelKind.WHITE_BOX and "hwsig" not in cleaned.values and device.hwsig is None and mac:
        cleaned.values["hwsig"] = f"mac-{mac}"


def _check_line_oem(actor: Actor, options: Options, cleaned: F.CleanFields) -> None:
    if options.line_oem_id not in (None, "") and options.line_oem_id != actor.oem_id:
        cleaned.failures.append(f"oem_id {options.line_oem_id} is not your OEM")


# --- shared rules -------------------------------------------------------------------


def _check_model(session: Session, device: Device, model: object, *, allowed: frozenset[ModelKind]) -> None:
    """AFS-601 when the model is not the device's or not of a kind the caller may use."""
    if model != device.model:
        raise InvalidModel(model)
    if _model_kind(session, device) not in allowed:
        raise InvalidModel(model)


def _model_kind(session: Session, device: Device) -> ModelKind:
    model = accounts_queries.get_model(session, device.model)
    assert model is not None  # a foreign key
    return ModelKind(model.kind)


def _check_failures(
    session: Session, device: Device, cleaned: F.CleanFields, *, keep_factory_values: bool = False
) -> None:
    failures = list(cleaned.failures)
    if keep_factory_values:
        for name in F.FACTORY_FIELDS:
            current = getattr(device, name)
            if name in cleaned.values and current is not None and current != cleaned.values[name]:
                failures.append(f"{name} does not match the manufactured value {F.display(name, current)}")
    failures += [
        f"{name} is already taken" for name in queries.field_owners(session, device.dsn, cleaned.values)
    ]
    if failures:
        raise ValidationFailed.of(failures)


def _compare(device: Device, cleaned: F.CleanFields) -> Result:
    """A repeat on a finished device: identical, or a conflict naming each field."""
    changes = [
        Change(name, getattr(device, name), value)
        for name, value in cleaned.values.items()
        if getattr(device, name) != value
    ]
    if cleaned.bad_date is not None:
        changes.append(Change("dom_at", device.dom_at, cleaned.bad_date))
    if changes:
        raise ConflictingValues(changes)
    return Result(device, Outcome.IDENTICAL)


class ConflictingValues(ValidationFailed):
    """The device already holds different values (an upload's ``conflict`` outcome)."""

    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        super().__init__(
            "There were some failures while processing: the device holds different values: "
            + "; ".join(change.describe() for change in changes)
        )


def _assign(device: Device, values: Mapping[str, Any]) -> list[Change]:
    changes = []
    for name, value in values.items():
        if getattr(device, name) != value:
            changes.append(Change(name, getattr(device, name), value))
            setattr(device, name, value)
    return changes
