"""Reserve DSNs, read devices and their jobs, verify a module's credential."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from devicefactory.accounts import queries as accounts_queries
from devicefactory.accounts.models import DEFAULT_RESERVATION_LIMIT, ModuleModel, Oem
from devicefactory.accounts.policy import Actor, ModelKind, require
from devicefactory.actions.models import ActionStatus, ActionType, FactoryAction
from devicefactory.devices import fields as F
from devicefactory.devices import queries
from devicefactory.devices.dsn import MAX_SEQUENCE, dsn_range
from devicefactory.devices.jobs import run_as_job
from devicefactory.devices.models import Device, DeviceStatus, Job, JobResult
from devicefactory.devices.queries import Reach
from devicefactory.devices.search import encode_cursor, parse_search
from devicefactory.errors import (
    CountTooLow,
    InvalidCount,
    InvalidModel,
    KeyPoolExhausted,
    MissingAttributes,
    MissingFactoryCertificate,
    NotFound,
    ReservationLimitExceeded,
    ValidationFailed,
)
from devicefactory.keys import queries as key_queries
from devicefactory.keys.crypto import (
    KeyDecryptionError,
    MasterKey,
    SealedKeyPair,
    VerifyTokenError,
    decrypt_verify_token,
    unseal_private_key,
)

MAX_RESERVE = 1000
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_OEM_ID = re.compile(r"[0-9a-f]{8}")
VERIFY_WINDOW_SECONDS = 300


@dataclass(frozen=True)
class Reservation:
    action_id: int
    devices: Sequence[tuple[str, str]]  # (dsn, public key PEM), in DSN order


def reserve_devices(
    session: Session, actor: Actor, *, body: Mapping[str, object], now: datetime, dsn_prefix: str
) -> Reservation:
    """One contiguous DSN range with a pooled key pair per DSN, in one transaction."""
    require(actor.may_reserve)
    missing = [name for name in ("count", "model") if F.is_missing(body.get(name))]
    if missing:
        raise MissingAttributes(missing)
    count = _parse_count(body["count"])
    model = _reservable_model(session, actor, body["model"])
    oem = _target_oem(session, actor, body.get("oem_id"))
    oem_id = oem.oem_id if oem else None
    limit = oem.reservation_limit if oem else DEFAULT_RESERVATION_LIMIT
    if queries.reserved_count(session, oem_id) + count > limit:
        raise ReservationLimitExceeded(limit)
    if oem is not None and not oem.factory_certificate:
        raise MissingFactoryCertificate(oem.oem_id)
    keys = key_queries.take_keys(session, count)
    if len(keys) < count:
        raise KeyPoolExhausted()
    first = queries.advance_counter(session, queries.DSN_COUNTER, count)
    if first + count - 1 > MAX_SEQUENCE:
        raise ValidationFailed.of(["the DSN sequence is exhausted"])
    action = _reserve_action(session, actor, oem_id=oem_id, model=model.name, count=count, now=now)
    dsns = dsn_range(dsn_prefix, first, count)
    _insert_reserved(
        session, actor, dsns, keys, model=model.name, oem_id=oem_id, action_id=action.id, now=now
    )
    return Reservation(action.id, [(dsn, public) for dsn, (public, _) in zip(dsns, keys, strict=True)])


def _parse_count(value: object) -> int:
    """AFS-602 for anything but an integer up to 1000; AFS-603 below 1."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or number > MAX_RESERVE:
        raise InvalidCount(value)
    if number < 1:
        raise CountTooLow()
    return number


def _reservable_model(session: Session, actor: Actor, name: object) -> ModuleModel:
    known = isinstance(name, str) and name.isprintable() and len(name) <= 64
    model = accounts_queries.get_model(session, name) if known and isinstance(name, str) else None
    if model is None or ModelKind(model.kind) not in actor.reservable_kinds():
        raise InvalidModel(name)
    return model


def _target_oem(session: Session, actor: Actor, requested: object) -> Oem | None:
    """Ayla::Admin may reserve for any OEM (or the platform); others for their own."""
    oem_id = actor.oem_id
    if actor.is_platform_admin:
        if F.is_missing(requested):
            return None
        if not isinstance(requested, str):
            raise ValidationFailed.of(["oem_id must be a string"])
        oem_id = requested
    assert oem_id is not None
    oem = accounts_queries.get_oem_for_update(session, oem_id) if _OEM_ID.fullmatch(oem_id) else None
    if oem is None:
        raise ValidationFailed.of([f"oem_id {oem_id} is not a known OEM"])
    return oem


def _reserve_action(
    session: Session, actor: Actor, *, oem_id: str | None, model: str, count: int, now: datetime
) -> FactoryAction:
    action = FactoryAction(
        type=ActionType.RESERVE,
        status=ActionStatus.SUCCESS,
        count=count,
        oem_id=oem_id,
        created_by=actor.email,
        created_by_user_id=actor.user_id,
        created_at=now,
        started_at=now,
        finished_at=now,
        model=model,
        lines_total=count,
        lines_done=count,
        applied=count,
    )
    session.add(action)
    session.flush()
    return action


def _insert_reserved(
    session: Session,
    actor: Actor,
    dsns: list[str],
    keys: Sequence[tuple[str, bytes]],
    *,
    model: str,
    oem_id: str | None,
    action_id: int,
    now: datetime,
) -> None:
    queries.insert_devices(
        session,
        [
            {
                "dsn": dsn,
                "model": model,
                "status": DeviceStatus.RESERVED,
                "public_key": public,
                "sealed_private_key": sealed,
                "reserved_by_oem_id": oem_id,
                "reserve_action_id": action_id,
                "reserved_at": now,
                "datapoint_count": 0,
                "last_job_failed": False,
            }
            for dsn, (public, sealed) in zip(dsns, keys, strict=True)
        ],
    )
    queries.insert_jobs(
        session,
        [
            {
                "dsn": dsn,
                "action_id": action_id,
                "operation": "reserve",
                "result": JobResult.SUCCESS,
                "created_by": actor.email,
                "created_at": now,
            }
            for dsn in dsns
        ],
    )


# --- reading --------------------------------------------------------------------------


def get_device(session: Session, actor: Actor, dsn: str) -> Device:
    device = queries.find_device(session, actor, dsn, Reach.VIEW)
    if device is None:
        raise NotFound(f"Device {dsn} not found")
    return device


def device_jobs(session: Session, actor: Actor, dsn: str) -> Sequence[Job]:
    return queries.jobs_of(session, get_device(session, actor, dsn).dsn)


# --- end-of-line verification ---------------------------------------------------------


def verify_device(
    session: Session,
    actor: Actor,
    *,
    dsn: str,
    body: Mapping[str, object],
    now: datetime,
    master_key: MasterKey,
) -> Device:
    """The module proves it holds this DSN's credential: RSA-OAEP("<dsn>:<unix time>")."""
    require(actor.may_manufacture or actor.may_provision)
    device = queries.find_device(session, actor, dsn, Reach.VERIFY, lock=True)
    if device is None:
        raise NotFound(f"Device {dsn} not found")

    def verify() -> Device:
        _check_verify_token(device, body.get("token"), now, master_key)
        device.ads_connect_flag = True
        device.verified_at = now
        session.flush()
        return device

    return run_as_job(session, verify, device=device, operation="verify", now=now, actor=actor)


def _check_verify_token(device: Device, token: object, now: datetime, master_key: MasterKey) -> None:
    if F.is_missing(token):
        raise MissingAttributes(["token"])
    try:
        raw = base64.b64decode(str(token), validate=True)
        pair = SealedKeyPair(device.public_key, device.sealed_private_key)
        message = decrypt_verify_token(raw, unseal_private_key(master_key, pair)).decode("ascii")
    except (binascii.Error, ValueError, VerifyTokenError, KeyDecryptionError, UnicodeDecodeError):
        raise ValidationFailed.of(["token does not decrypt with this device's key"]) from None
    token_dsn, _, stamp = message.rpartition(":")
    if token_dsn != device.dsn:
        raise ValidationFailed.of(["token was made for another device"])
    if not stamp.isdigit() or abs(now.timestamp() - int(stamp)) > VERIFY_WINDOW_SECONDS:
        raise ValidationFailed.of(["token time is not within 5 minutes of the service's clock"])


# --- search and factory reset ---------------------------------------------------------


def search_devices(
    session: Session, actor: Actor, params: Mapping[str, str]
) -> tuple[Sequence[Device], str | None]:
    """The DSN View; returns a page and the cursor of the next one (None at the end)."""
    search = parse_search(params)
    devices = queries.search_devices(session, actor, search)
    more = len(devices) == search.limit
    return devices, encode_cursor(devices[-1].dsn) if more else None


RESET_STEPS = (
    ("reset_template", "Reset Template"),
    ("reset_device", "Reset Device"),
    ("unregister_device", "Unregister Device"),
    ("reset_datapoints", "Reset Datapoints"),
)


@dataclass(frozen=True)
class ResetStep:
    step: str
    name: str
    result: str
    message: str


def factory_reset(
    session: Session, actor: Actor, *, dsn: str, now: datetime
) -> tuple[Device, list[ResetStep]]:
    """Clear the device's cloud-side state in four reported steps; identity and factory data stay."""
    require(actor.may_factory_reset)
    device = queries.find_device(session, actor, dsn, Reach.FACTORY_RESET, lock=True)
    if device is None:
        raise NotFound(f"Device {dsn} not found")
    steps = []
    for step, name in RESET_STEPS:
        message = run_as_job(
            session,
            functools.partial(_reset_step, device, step),
            device=device,
            operation=f"factory_reset:{step}",
            now=now,
            actor=actor,
            success_message=str,
        )
        steps.append(ResetStep(step, name, JobResult.SUCCESS, message))
    session.flush()
    return device, steps


def _reset_step(device: Device, step: str) -> str:
    if step == "reset_template":
        previous, device.template_id = device.template_id, None
        return f"template {previous} removed" if previous else "no template was associated"
    if step == "reset_device":
        device.ads_connect_flag, device.verified_at = None, None
        return "connection flag cleared"
    if step == "unregister_device":
        previous_user, device.registered_user = device.registered_user, None
        return f"unregistered from {previous_user}" if previous_user else "the device was not registered"
    count, device.datapoint_count = device.datapoint_count, 0
    return f"{count} datapoint(s) deleted"
