"""Reserve DSNs, read devices and their jobs, verify a module's credential."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from devicefactory import counters
from devicefactory.accounts import queries as accounts_queries
from devicefactory.accounts.policy import Actor, ModelKind, require
from devicefactory.config import Settings
from devicefactory.devices import fields as F
from devicefactory.devices import queries
from devicefactory.devices.dsn import MAX_SEQUENCE, dsn_range
from devicefactory.devices.factory_data import DeviceRetired, Outcome, Overlay, Result, refuse_retired
from devicefactory.devices.jobs import job_row, run_as_job
from devicefactory.devices.queries import Reach
from devicefactory.devices.records import DeviceRecord
from devicefactory.devices.search import encode_cursor, parse_search
from devicefactory.errors import (
    AlreadyManufactured,
    AlreadyProvisioned,
    CountTooLow,
    InvalidCount,
    InvalidModel,
    KeyPoolExhausted,
    KeyUnavailable,
    MissingAttributes,
    MissingFactoryCertificate,
    NotFound,
    ReservationLimitExceeded,
    ServiceError,
    ValidationFailed,
)
from devicefactory.keys import queries as key_queries
from devicefactory.keys.crypto import (
    KeyDecryptionError,
    Keyring,
    MasterKeyMissing,
    SealedKeyPair,
    VerifyTokenError,
    decrypt_verify_token,
)
from devicefactory.tables.accounts import DEFAULT_RESERVATION_LIMIT, ModuleModel, Oem
from devicefactory.tables.actions import ActionStatus, ActionType, FactoryAction
from devicefactory.tables.devices import Device, DeviceStatus, Job, JobResult
from devicefactory.webhooks import outbox

MAX_RESERVE = 1000
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_OEM_ID = re.compile(r"[0-9a-f]{8}")
VERIFY_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Reservation:
    action_id: int
    oem_id: str | None
    devices: Sequence[tuple[str, str]]  # (dsn, public key PEM), in DSN order


@dataclass(frozen=True)
class KeyPoolShare:
    """How the shared key pool is shared between OEMs (docs/decisions.md, "Key pool").

    The last ``floor`` keys are kept so that every OEM can reserve a small batch while the
    pool refills: a reserve that would leave fewer is served only if, with it, its OEM has
    reserved at most ``small_batch`` devices in the last ``window``.
    """

    floor: int = 0
    small_batch: int = 0
    window: timedelta = timedelta(minutes=5)

    @classmethod
    def of(cls, settings: Settings) -> KeyPoolShare:
        floor = settings.key_pool_target // 5 if settings.key_pool_floor is None else settings.key_pool_floor
        small = max(1, floor // 4) if settings.key_pool_small_batch is None else settings.key_pool_small_batch
        return cls(floor, small)

    def reservable(self, pool_size: int, recent: int) -> int:
        """How many keys one reserve of an OEM that reserved ``recent`` lately may take now."""
        return max(0, pool_size - self.floor, min(pool_size, self.small_batch - recent))


def reserve_devices(
    session: Session,
    actor: Actor,
    *,
    body: Mapping[str, object],
    now: datetime,
    dsn_prefix: str,
    share: KeyPoolShare = KeyPoolShare(),
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
    below_limit = limit - queries.reserved_count(session, oem_id)
    if count > below_limit:
        raise ReservationLimitExceeded(limit)
    if oem is not None and not oem.factory_certificate:
        raise MissingFactoryCertificate(oem.oem_id)
    keys = _take_keys(session, oem_id, count, now=now, share=share, below_limit=below_limit)
    first = counters.advance_counter(session, counters.DSN_COUNTER, count)
    if first + count - 1 > MAX_SEQUENCE:
        raise ValidationFailed.of(["the DSN sequence is exhausted"])
    action = _reserve_action(session, actor, oem_id=oem_id, model=model.name, count=count, now=now)
    dsns = dsn_range(dsn_prefix, first, count)
    _insert_reserved(
        session, actor, dsns, keys, model=model.name, oem_id=oem_id, action_id=action.id, now=now
    )
    pairs = [(dsn, key.public_pem) for dsn, key in zip(dsns, keys, strict=True)]
    outbox.emit(
        session, oem_id, outbox.Event.DEVICES_RESERVED, outbox.reserved_payload(action, dsns), now=now
    )
    return Reservation(action.id, oem_id, pairs)


def _take_keys(
    session: Session, oem_id: str | None, count: int, *, now: datetime, share: KeyPoolShare, below_limit: int
) -> Sequence[SealedKeyPair]:
    """``count`` keys from the pool, if this OEM's fair share allows; else AFS-605 saying how
    many it could reserve now and, from the measured fill rate, when to retry."""
    size = key_queries.pool_size(session)
    recent = queries.reserved_since(session, oem_id, now - share.window) if size - count < share.floor else 0
    reservable = share.reservable(size, recent)
    keys = key_queries.take_keys(session, count) if count <= reservable else []
    if len(keys) == count:
        return keys
    missing = count - reservable if count > reservable else count - len(keys)
    rate = key_queries.fill_rate(session, now)
    retry_after = min(3600, max(1, math.ceil(missing / rate))) if rate > 0 else 60
    raise KeyPoolExhausted(retry_after, reservable=min(reservable, below_limit, MAX_RESERVE))


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
    keys: Sequence[SealedKeyPair],
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
                "public_key": key.public_pem,
                "sealed_private_key": key.sealed_private,
                "master_key_id": key.key_id,
                "reserved_by_oem_id": oem_id,
                "reserve_action_id": action_id,
                "reserved_at": now,
                "datapoint_count": 0,
                "last_job_failed": False,
            }
            for dsn, key in zip(dsns, keys, strict=True)
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
    return queries.jobs_of(session, actor, get_device(session, actor, dsn).dsn)


# --- end-of-line verification ---------------------------------------------------------


def verify_device(
    session: Session,
    actor: Actor,
    *,
    dsn: str,
    body: Mapping[str, object],
    now: datetime,
    keyring: Keyring,
) -> Device:
    """The module proves it holds this DSN's credential: RSA-OAEP("<dsn>:<unix time>")."""
    require(actor.may_manufacture or actor.may_provision)
    device = queries.find_device(session, actor, dsn, Reach.VERIFY, lock=True)
    if device is None:
        raise NotFound(f"Device {dsn} not found")

    def verify() -> Device:
        refuse_retired(device)  # its key is gone: nothing could ever prove it
        token_hash = _check_verify_token(session, device, body.get("token"), now, keyring)
        try:
            queries.use_verify_token(session, token_hash, device.dsn, now, keep=2 * VERIFY_WINDOW)
        except IntegrityError:  # the same token, accepted by a parallel request just now
            raise ValidationFailed.of(["token was already used"]) from None
        device.ads_connect_flag = True
        device.verified_at = now
        session.flush()
        return device

    return run_as_job(session, verify, device=device, operation="verify", now=now, actor=actor)


def _check_verify_token(
    session: Session, device: Device, token: object, now: datetime, keyring: Keyring
) -> str:
    """The token's hash, once it is known good and never used before."""
    if F.is_missing(token):
        raise MissingAttributes(["token"])
    try:
        raw = base64.b64decode(str(token), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed.of(["token is not base64"]) from None
    token_hash = hashlib.sha256(raw).hexdigest()
    if queries.verify_token_used(session, token_hash):
        raise ValidationFailed.of(["token was already used"])  # a replay
    if device.sealed_private_key is None:
        raise DeviceRetired(device.dsn)
    try:
        pair = SealedKeyPair(device.public_key, device.sealed_private_key, device.master_key_id)
        message = decrypt_verify_token(raw, keyring.unseal(pair)).decode("ascii")
    except MasterKeyMissing:
        raise KeyUnavailable() from None
    except (binascii.Error, ValueError, VerifyTokenError, KeyDecryptionError, UnicodeDecodeError):
        raise ValidationFailed.of(["token does not decrypt with this device's key"]) from None
    token_dsn, _, stamp = message.rpartition(":")
    if token_dsn != device.dsn:
        raise ValidationFailed.of(["token was made for another device"])
    if not stamp.isdigit() or abs(now.timestamp() - int(stamp)) > VERIFY_WINDOW.total_seconds():
        raise ValidationFailed.of(["token time is not within 5 minutes of the service's clock"])
    return token_hash


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
    outbox.emit(session, device.owner_oem_id, outbox.Event.DEVICE_FACTORY_RESET, {"dsn": device.dsn}, now=now)
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


# --- retirement (docs/lifecycle.md) ----------------------------------------------------


def may_retire(actor: Actor) -> bool:
    """Who may retire: the roles that reserve, each for its OEM's devices of the kinds it
    makes (``queries.Reach.RETIRE``), OEM::Admin for all its OEM reserved, Ayla::Admin."""
    return actor.may_reserve


@dataclass(frozen=True)
class RetireBatch:
    """What a set of retire requests did: the reachable devices (as they now are), their
    status as stored before, and per request a ``Result`` or the refusal."""

    devices: dict[str, DeviceRecord]
    stored_status: dict[str, str]
    results: list[Result | ServiceError]


def retire_devices(
    session: Session,
    actor: Actor,
    dsns: Sequence[str],
    *,
    now: datetime,
    repeat_is_error: bool,
    action_id: int | None = None,
    also: Sequence[str] = (),
    write: bool = True,
    overlay: Overlay | None = None,
) -> RetireBatch:
    """Retire each DSN in order: status retired, private key destroyed, a ``retire`` job.

    The one implementation for the API (one DSN) and uploads (a batch). With ``write``
    False (validate) the same rules run on the same records and nothing is written.
    """
    require(may_retire(actor))
    devices = queries.find_devices(session, actor, [*dsns, *also], Reach.RETIRE, lock=write)
    stored_status = {dsn: device.status for dsn, device in devices.items()}
    if overlay is not None:
        for dsn, changes in overlay.changes_of(list(devices)).items():
            for name, value in changes.items():
                setattr(devices[dsn], name, value)
    results: list[Result | ServiceError] = []
    jobs: list[dict[str, object]] = []
    for dsn in dsns:
        device = devices.get(dsn)
        if device is None:
            results.append(NotFound(f"Device {dsn} not found"))
            continue
        job = functools.partial(
            job_row, device, operation="retire", now=now, actor=actor, action_id=action_id
        )
        try:
            outcome = _retire_record(device, repeat_is_error=repeat_is_error)
        except ServiceError as error:
            jobs.append(job(error=error))
            results.append(error)
            continue
        jobs.append(job(message=RETIRED_MESSAGES[outcome]))
        results.append(Result(device, outcome))
    if write:
        applied = [r.device.dsn for r in results if isinstance(r, Result) and r.outcome is Outcome.APPLIED]
        queries.update_devices(session, devices.values())
        queries.destroy_keys(session, applied)
        queries.insert_jobs(session, jobs)
    return RetireBatch(devices, stored_status, results)


RETIRED_MESSAGES = {
    Outcome.APPLIED: "retired: its private key was destroyed",
    Outcome.IDENTICAL: "already retired",
}


def _retire_record(device: DeviceRecord, *, repeat_is_error: bool) -> Outcome:
    """Only a reserved, never-manufactured DSN may be retired (the seed's codes otherwise)."""
    if device.status == DeviceStatus.RETIRED and not repeat_is_error:
        return Outcome.IDENTICAL
    refuse_retired(device)
    if device.status == DeviceStatus.MANUFACTURED or device.manufactured_at is not None:
        raise AlreadyManufactured()
    if device.status == DeviceStatus.PROVISIONED:
        raise AlreadyProvisioned()
    device.status = DeviceStatus.RETIRED
    return Outcome.APPLIED


def retire_device(session: Session, actor: Actor, *, dsn: str, now: datetime) -> Device:
    """The API's retire: one DSN; a refusal is raised, its failed job committed with it."""
    (result,) = retire_devices(session, actor, [dsn], now=now, repeat_is_error=True).results
    if isinstance(result, NotFound):
        raise result  # nothing reachable: no job was recorded
    if isinstance(result, ServiceError):
        raise result.recorded()
    device = queries.find_device(session, actor, dsn, Reach.RETIRE)
    assert device is not None
    return device
