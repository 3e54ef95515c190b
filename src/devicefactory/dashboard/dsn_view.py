"""The DSN View tab: device search, a device's every field, its jobs, factory reset."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request, Response

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor
from devicefactory.dashboard import forms
from devicefactory.dashboard.pages import DashboardRoute, render
from devicefactory.dashboard.session import PREFIX, CheckedForm, DashboardActor
from devicefactory.device_fields import FIELDS, DeviceField, Search
from devicefactory.devices import service
from devicefactory.devices.search import STATUSES
from devicefactory.errors import ValidationFailed
from devicefactory.http.transaction import NowDep, ReadSession, WriteSession
from devicefactory.tables.devices import Device

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

# The fields the search form offers: in its first row, or under "More filters".
_SEARCHED = tuple(field for field in FIELDS if field.search is not Search.NONE)
QUICK_FILTERS = tuple(field for field in _SEARCHED if field.quick_search)
MORE_FILTERS = tuple(field for field in _SEARCHED if not field.quick_search)
# The panel of "more filters" opens when one of them is set.
MORE_FIELDS = (*(field.name for field in MORE_FILTERS), "action_id")
# The results' columns, and the device page's cards (in the table's order).
COLUMNS = tuple(field for field in FIELDS if field.column)
CARDS: dict[str, tuple[DeviceField, ...]] = {
    card: tuple(field for field in FIELDS if field.card == card)
    for card in dict.fromkeys(f.card for f in FIELDS)
}


def may_reset(actor: Actor, device: Device) -> bool:
    """FACTORY RESET is offered to OEM::Admin (and Ayla::Admin) of the device's owner."""
    return actor.may_factory_reset and (actor.is_platform_admin or device.owner_oem_id == actor.oem_id)


@router.get("/devices")
def devices_page(request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    params = request.query_params
    error: ValidationFailed | None = None
    devices: Sequence[Device] = []
    next_cursor: str | None = None
    try:
        devices, next_cursor = service.search_devices(session, actor, forms.device_search(params))
    except ValidationFailed as failed:
        error = failed
    values = {name: params.get(name, "") for name in forms.DEVICE_PARAMS}
    next_url = f"{PREFIX}/devices?{forms.device_query(params, cursor=next_cursor)}" if next_cursor else None
    first_url = f"{PREFIX}/devices?{forms.device_query(params, cursor=None)}" if values["cursor"] else None
    return render(
        request,
        "devices.html",
        {
            "tab": "devices",
            "devices": devices,
            "error": error,
            "values": values,
            "more_open": any(values[name] for name in MORE_FIELDS),
            "filtered": any(values[name] for name in forms.DEVICE_FIELDS),
            "next_url": next_url,
            "first_url": first_url,
            "models": accounts.list_models(session),
            "status_options": [(status, status.capitalize()) for status in STATUSES],
            "page_sizes": forms.DEVICES_PAGES,
            "quick_filters": QUICK_FILTERS,
            "more_filters": MORE_FILTERS,
            "columns": COLUMNS,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/devices/{dsn}")
def device_page(dsn: str, request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    device = service.get_device(session, actor, dsn)
    return render(
        request,
        "device.html",
        {
            "tab": "devices",
            "device": device,
            "may_reset": may_reset(actor, device),
            "steps": None,
            "cards": CARDS,
        },
    )


@router.get("/devices/{dsn}/jobs")
def jobs_page(dsn: str, request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    jobs = service.device_jobs(session, actor, dsn)
    return render(request, "jobs.html", {"tab": "devices", "dsn": dsn, "jobs": jobs})


@router.post("/devices/{dsn}/factory_reset")
def factory_reset(
    dsn: str, request: Request, actor: DashboardActor, _form: CheckedForm, session: WriteSession, now: NowDep
) -> Response:
    """The four steps run now; the page shows each step's result."""
    device, steps = service.factory_reset(session, actor, dsn=dsn, now=now)
    return render(
        request,
        "device.html",
        {
            "tab": "devices",
            "device": device,
            "may_reset": may_reset(actor, device),
            "steps": steps,
            "cards": CARDS,
        },
    )
