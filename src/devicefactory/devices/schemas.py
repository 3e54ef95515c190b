"""JSON shapes of the devices API (the seed's tables 4, 6 and 8)."""

from __future__ import annotations

from typing import Any

from devicefactory.accounts.schemas import iso
from devicefactory.devices.fields import format_dom
from devicefactory.devices.records import DeviceRecord
from devicefactory.tables.devices import Device, Job


def manufacture_json(device: Device | DeviceRecord) -> dict[str, Any]:
    return {
        "dsn": device.dsn,
        "model": device.model,
        "mac": device.mac,
        "hwsig": device.hwsig,
        "odm": device.odm,
        "manuf_model": device.manuf_model,
        "manuf_sn": device.manuf_sn,
        "module_sw_version": device.module_sw_version,
        "oem_host_version": device.oem_host_version,
        "wifi_setup_key": device.wifi_setup_key,
        "ads_connect_flag": device.ads_connect_flag,
        "dom_at": format_dom(device.dom_at),
    }


def provision_json(device: Device | DeviceRecord) -> dict[str, Any]:
    return {**manufacture_json(device), "oem": device.owner_oem_id, "oem_model": device.oem_model}


def device_json(device: Device) -> dict[str, Any]:
    """Every field of a device, for the detail view and the search (never the private key)."""
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
