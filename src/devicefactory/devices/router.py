"""The seed's three calls, plus device detail, jobs and verify."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.background import BackgroundTask

from devicefactory.accounts.access import ActorDep
from devicefactory.devices import bodies, export, factory_data, service
from devicefactory.devices.factory_data import DeviceRetired
from devicefactory.devices.fields import MANUFACTURE_REQUIRED, PROVISION_ALWAYS_REQUIRED
from devicefactory.devices.schemas import device_json, job_json, manufacture_json, provision_json
from devicefactory.errors import (
    AlreadyManufactured,
    AlreadyProvisioned,
    CountTooLow,
    Forbidden,
    InvalidCount,
    InvalidDate,
    InvalidModel,
    KeyPoolExhausted,
    MalformedRequest,
    MissingAttributes,
    NotFound,
    PayloadTooLarge,
    ReservationLimitExceeded,
    ServiceError,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from devicefactory.http.bodies import JsonBody
from devicefactory.http.caller import count_reserve
from devicefactory.http.openapi import afs_errors, request_body
from devicefactory.http.streaming import heavy_slot, stream_heavy
from devicefactory.http.transaction import (
    LineWriteSession,
    NowDep,
    ReadSession,
    ReadSessionsDep,
    SettingsDep,
    TransactionalRoute,
    record_event,
)
from devicefactory.keys.access import KeyringDep

router = APIRouter(prefix="/devicefactory/v1/devices", tags=["devices"], route_class=TransactionalRoute)

# What every route may answer, and every JSON body before a field is read (SPEC §4, §11).
_UNKNOWN_DSN = NotFound("Device AC000W000000001 not found")
_CALLER_ERRORS: tuple[ServiceError, ...] = (Unauthorized(), Forbidden(), _UNKNOWN_DSN)
_BODY_ERRORS: tuple[ServiceError, ...] = (
    PayloadTooLarge(1_048_576),
    MalformedRequest("malformed JSON: the request body is not valid JSON"),
    MalformedRequest("the request body must be a JSON object"),
)
_FIELD_ERRORS: tuple[ServiceError, ...] = (
    InvalidModel("XYZ"),
    InvalidDate("2016-11-24"),
    ValidationFailed.of(["mac is already taken", "hwsig is already taken"]),
)


@router.get(
    "",
    response_model=None,
    responses={
        200: {"model": bodies.DevicePage, "description": "A page of devices, in DSN order"},
        **afs_errors(
            Unauthorized(),
            ValidationFailed.of(["colour is not a search parameter"]),
            TooManyRequests("file downloads, searches and exports in flight for your OEM", 1),
        ),
    },
    openapi_extra={"parameters": bodies.search_parameters()},
)
def search(request: Request, actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """The DSN View search: every filter of the dashboard, and Ayla's `filter[...]` form."""
    with heavy_slot(request, actor):
        devices, next_cursor = service.search_devices(session, actor, dict(request.query_params))
    return {"devices": [device_json(d, actor) for d in devices], "next_cursor": next_cursor}


@router.get(
    ".csv",
    response_model=None,
    responses={
        200: {
            "description": "Every matching device, in DSN order (docs/export.md)",
            "content": {"text/csv": {}},
        },
        **afs_errors(
            Unauthorized(),
            Forbidden("Forbidden: your role may not search by wifi_setup_key"),
            ValidationFailed.of(["colour is not a search parameter"]),
            TooManyRequests("file downloads, searches and exports in flight for your OEM", 1),
        ),
    },
    openapi_extra={"parameters": bodies.search_parameters()},
)
def export_csv(request: Request, actor: ActorDep, pages: ReadSessionsDep) -> Response:
    """Every device the DSN View search matches, as CSV, streamed in pages (`limit` is ignored,
    `cursor` resumes after a DSN); `wifi_setup_key` is `****` for OEM::Viewer. An audit entry."""

    def opened() -> export.DeviceExport:
        file = export.export_devices(actor, dict(request.query_params), pages=pages)
        record_event(request, "devices.export", {"filters": dict(request.query_params)})
        return file

    return stream_heavy(request, actor, opened)


@router.post(
    "/reserve",
    response_model=None,
    responses={
        200: {"model": bodies.ReserveAnswer, "description": "The reserved DSNs and their public keys"},
        **afs_errors(
            Unauthorized(),
            Forbidden(),
            *_BODY_ERRORS,
            MissingAttributes(["count", "model"]),
            InvalidCount("abc"),
            CountTooLow(),
            InvalidModel("XYZ"),
            ReservationLimitExceeded(100_000),
            KeyPoolExhausted(),
        ),
    },
    openapi_extra=request_body(bodies.ReserveRequest),
)
def reserve(
    body: JsonBody,
    request: Request,
    actor: ActorDep,
    session: LineWriteSession,
    settings: SettingsDep,
    now: NowDep,
) -> JSONResponse:
    """Reserve `count` DSNs (one contiguous range) of `model`, each with its own key pair.

    AFS-605 carries `Retry-After` (from the measured fill rate) and `X-Reservable-Now`."""
    reservation = service.reserve_devices(
        session,
        actor,
        body=body,
        now=now,
        dsn_prefix=settings.dsn_prefix,
        share=service.KeyPoolShare.of(settings),
    )
    content = [{"device": {"dsn": dsn, "public_key": public}} for dsn, public in reservation.devices]
    # Counted once the answer is sent: a batch that fails after this body runs drops the
    # response, its background task with it, so a lost reserve is never counted.
    return JSONResponse(
        content,
        headers={"X-Factory-Action": str(reservation.action_id)},
        background=BackgroundTask(count_reserve, request, reservation.oem_id),
    )


@router.post(
    "/{dsn}/manufacture",
    response_model=None,
    responses={
        200: {"model": bodies.ManufactureAnswer, "description": "The manufactured device"},
        **afs_errors(
            *_CALLER_ERRORS,
            *_BODY_ERRORS,
            MissingAttributes(MANUFACTURE_REQUIRED),
            AlreadyManufactured(),
            *_FIELD_ERRORS,
        ),
    },
    openapi_extra=request_body(bodies.ManufactureRequest),
)
def manufacture(
    dsn: str, body: JsonBody, actor: ActorDep, session: LineWriteSession, now: NowDep
) -> Response:
    """Record what the module maker's line wrote into the module."""
    result = factory_data.manufacture_device(session, actor, dsn=dsn, body=body, now=now)
    # Rendered here: the answer is plain JSON already, and FastAPI's encoder walk is a hot
    # path's cost (a factory line calls this once per module).
    return JSONResponse({"device": manufacture_json(result.device)})


@router.post(
    "/{dsn}/provision",
    response_model=None,
    responses={
        200: {"model": bodies.ProvisionAnswer, "description": "The provisioned device"},
        **afs_errors(
            *_CALLER_ERRORS,
            *_BODY_ERRORS,
            MissingAttributes(PROVISION_ALWAYS_REQUIRED),
            AlreadyProvisioned(),
            *_FIELD_ERRORS,
        ),
    },
    openapi_extra=request_body(bodies.ProvisionRequest),
)
def provision(dsn: str, body: JsonBody, actor: ActorDep, session: LineWriteSession, now: NowDep) -> Response:
    """Record the product maker's data; its OEM becomes the device's owner."""
    result = factory_data.provision_device(session, actor, dsn=dsn, body=body, now=now)
    return JSONResponse({"device": provision_json(result.device)})  # plain JSON: see manufacture


@router.post(
    "/{dsn}/verify",
    response_model=None,
    responses={
        200: {"model": bodies.DeviceAnswer, "description": "The device, its connection flag set"},
        **afs_errors(
            *_CALLER_ERRORS,
            *_BODY_ERRORS,
            MissingAttributes(["token"]),
            ValidationFailed.of(["token time is not within 5 minutes of the service's clock"]),
        ),
    },
    openapi_extra=request_body(bodies.VerifyRequest),
)
def verify(
    dsn: str,
    body: JsonBody,
    actor: ActorDep,
    session: LineWriteSession,
    now: NowDep,
    keyring: KeyringDep,
) -> dict[str, Any]:
    """End-of-line check: the module decrypts-proves it holds the DSN's credential."""
    device = service.verify_device(session, actor, dsn=dsn, body=body, now=now, keyring=keyring)
    return {"device": device_json(device)}


@router.post(
    "/{dsn}/factory_reset",
    response_model=None,
    responses={
        200: {"model": bodies.FactoryResetAnswer, "description": "The device and each step's result"},
        **afs_errors(*_CALLER_ERRORS),
    },
)
def factory_reset(dsn: str, actor: ActorDep, session: LineWriteSession, now: NowDep) -> dict[str, Any]:
    """Clear the device's cloud-side state in four reported steps (OEM::Admin of the owner)."""
    device, steps = service.factory_reset(session, actor, dsn=dsn, now=now)
    return {"device": device_json(device), "steps": [asdict(step) for step in steps]}


@router.post(
    "/{dsn}/retire",
    response_model=None,
    responses={
        200: {"model": bodies.DeviceAnswer, "description": "The device, retired, its private key destroyed"},
        **afs_errors(
            *_CALLER_ERRORS,
            AlreadyManufactured(),
            AlreadyProvisioned(),
            DeviceRetired("AC000W000000001"),
        ),
    },
)
def retire(dsn: str, actor: ActorDep, session: LineWriteSession, now: NowDep) -> dict[str, Any]:
    """Retire a reserved, never-manufactured DSN: its private key is destroyed, it no longer
    counts toward the reservation limit and is never issued again (docs/lifecycle.md).

    Who may: the reserving OEM's roles that reserve and make it, its OEM::Admin, Ayla::Admin."""
    device = service.retire_device(session, actor, dsn=dsn, now=now)
    return {"device": device_json(device)}


@router.get(
    "/{dsn}",
    response_model=None,
    responses={200: {"model": bodies.DeviceAnswer}, **afs_errors(Unauthorized(), _UNKNOWN_DSN)},
)
def get_device(dsn: str, actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """One device, every field."""
    return {"device": device_json(service.get_device(session, actor, dsn), actor)}


@router.get(
    "/{dsn}/jobs",
    response_model=None,
    responses={200: {"model": bodies.JobsAnswer}, **afs_errors(Unauthorized(), _UNKNOWN_DSN)},
)
def get_jobs(dsn: str, actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """The device's history, oldest first."""
    return {"jobs": [job_json(job) for job in service.device_jobs(session, actor, dsn)]}
