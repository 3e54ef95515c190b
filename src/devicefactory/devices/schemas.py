"""JSON shapes of the devices API (the seed's tables 4, 6 and 8)."""

from __future__ import annotations

from typing import Any

from devicefactory.accounts.policy import Actor
from devicefactory.accounts.schemas import iso
from devicefactory.device_fields import FIELDS, SECRET_FIELDS, DeviceField, Kind
from devicefactory.devices.fields import format_dom
from devicefactory.devices.records import DeviceRecord
from devicefactory.tables.devices import Device, Job

# The manufacture answer's fields; provision adds the rest with the owner.
MANUFACTURE_REPLY = tuple(field for field in FIELDS if field.manufacture_reply)
PROVISION_REPLY = tuple(field for field in FIELDS if not field.manufacture_reply)
# What a read-only viewer reads in place of a secret field, set or not (SPEC §13).
MASK = "****"


def _fields_json(device: Device | DeviceRecord, fields: tuple[DeviceField, ...]) -> dict[str, Any]:
    return {field.name: field_json(field, getattr(device, field.name)) for field in fields}


def field_json(field: DeviceField, value: Any) -> Any:
    """A field's value as the API answers it (moments in ISO 8601 UTC)."""
    return format_dom(value) if field.kind is Kind.MOMENT else value


def manufacture_json(device: Device | DeviceRecord) -> dict[str, Any]:
    return {"dsn": device.dsn, "model": device.model, **_fields_json(device, MANUFACTURE_REPLY)}


def provision_json(device: Device | DeviceRecord) -> dict[str, Any]:
    return {**manufacture_json(device), "oem": device.owner_oem_id, **_fields_json(device, PROVISION_REPLY)}


def device_json(device: Device, seen_by: Actor | None = None) -> dict[str, Any]:
    """Every field of a device, for the detail view and the search (never the private key);
    secret fields masked for a ``seen_by`` that may not see them."""
    return masked(_device_json(device), seen_by)


def masked(values: dict[str, Any], seen_by: Actor | None) -> dict[str, Any]:
    """``values`` with every secret field replaced by ``****`` when ``seen_by`` is a viewer."""
    if seen_by is None or seen_by.sees_secrets:
        return values
    return {**values, **{name: MASK for name in SECRET_FIELDS if name in values}}


class MaskedDevice:
    """A device as a viewer's page reads it: every attribute, secret fields ``****``."""

    def __init__(self, device: Device) -> None:
        self._device = device

    def __getattr__(self, name: str) -> Any:
        return MASK if name in SECRET_FIELDS else getattr(self._device, name)


def seen_by(device: Device, actor: Actor) -> Device | MaskedDevice:
    """The device for a page: itself, or masked for a viewer (dashboard/dsn_view.py)."""
    return device if actor.sees_secrets else MaskedDevice(device)


def _device_json(device: Device) -> dict[str, Any]:
    return {
        **provision_json(device),
        "status": device.status,
        "public_key": device.public_key,
        "reserved_by": device.reserved_by_oem_id,
        "reserve_action_id": device.reserve_action_id,
        "reserved_at": iso(device.reserved_at),
        "manufactured_at": iso(device.manufactured_at),
        "provisioned_at": iso(device.provisioned_at),
        "verified_at": iso(device.verified_at),
        "last_job_failed": device.last_job_failed,
    }


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "dsn": job.dsn,
        "action_id": job.action_id,
        "operation": job.operation,
        "result": job.result,
        "error_code": job.error_code,
        "message": job.message,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
    }
