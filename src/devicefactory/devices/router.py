"""The seed's three calls, plus device detail, jobs and verify."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from devicefactory.accounts.access import ActorDep
from devicefactory.devices import factory_data, service
from devicefactory.devices.schemas import device_json, job_json, manufacture_json, provision_json
from devicefactory.http.bodies import JsonBody
from devicefactory.http.caller import count_reserve
from devicefactory.http.streaming import heavy_slot
from devicefactory.http.transaction import NowDep, ReadSession, SettingsDep, TransactionalRoute, WriteSession
from devicefactory.keys.access import KeyringDep

router = APIRouter(prefix="/devicefactory/v1/devices", tags=["devices"], route_class=TransactionalRoute)


@router.get("")
def search(request: Request, actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """The DSN View search: every filter of the dashboard, and Ayla's `filter[...]` form."""
    with heavy_slot(request, actor):
        devices, next_cursor = service.search_devices(session, actor, dict(request.query_params))
    return {"devices": [device_json(d) for d in devices], "next_cursor": next_cursor}


@router.post("/reserve")
def reserve(
    body: JsonBody,
    request: Request,
    actor: ActorDep,
    session: WriteSession,
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
    count_reserve(request, reservation.oem_id)
    content = [{"device": {"dsn": dsn, "public_key": public}} for dsn, public in reservation.devices]
    return JSONResponse(content, headers={"X-Factory-Action": str(reservation.action_id)})


@router.post("/{dsn}/manufacture")
def manufacture(
    dsn: str, body: JsonBody, actor: ActorDep, session: WriteSession, now: NowDep
) -> dict[str, Any]:
    """Record what the module maker's line wrote into the module."""
    result = factory_data.manufacture_device(session, actor, dsn=dsn, body=body, now=now)
    return {"device": manufacture_json(result.device)}


@router.post("/{dsn}/provision")
def provision(
    dsn: str, body: JsonBody, actor: ActorDep, session: WriteSession, now: NowDep
) -> dict[str, Any]:
    """Record the product maker's data; its OEM becomes the device's owner."""
    result = factory_data.provision_device(session, actor, dsn=dsn, body=body, now=now)
    return {"device": provision_json(result.device)}


@router.post("/{dsn}/verify")
def verify(
    dsn: str,
    body: JsonBody,
    actor: ActorDep,
    session: WriteSession,
    now: NowDep,
    keyring: KeyringDep,
) -> dict[str, Any]:
    """End-of-line check: the module decrypts-proves it holds the DSN's credential."""
    device = service.verify_device(session, actor, dsn=dsn, body=body, now=now, keyring=keyring)
    return {"device": device_json(device)}


@router.post("/{dsn}/factory_reset")
def factory_reset(dsn: str, actor: ActorDep, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Clear the device's cloud-side state in four reported steps (OEM::Admin of the owner)."""
    device, steps = service.factory_reset(session, actor, dsn=dsn, now=now)
    return {"device": device_json(device), "steps": [asdict(step) for step in steps]}


@router.get("/{dsn}")
def get_device(dsn: str, actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """One device, every field."""
    return {"device": device_json(service.get_device(session, actor, dsn))}


@router.get("/{dsn}/jobs")
def get_jobs(dsn: str, actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """The device's history, oldest first."""
    return {"jobs": [job_json(job) for job in service.device_jobs(session, actor, dsn)]}
