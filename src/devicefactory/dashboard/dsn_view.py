"""The DSN View tab: device search, a device's every field, its jobs, factory reset."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from devicefactory.accounts import service as accounts
from devicefactory.accounts.names import oem_names
from devicefactory.accounts.policy import Actor
from devicefactory.dashboard import forms
from devicefactory.dashboard.pages import DashboardRoute, render
from devicefactory.dashboard.session import PREFIX, CheckedForm, DashboardActor
from devicefactory.device_fields import FIELDS, DeviceField, Search
from devicefactory.devices import export, related, service
from devicefactory.devices.schemas import seen_by
from devicefactory.devices.search import STATUSES
from devicefactory.errors import ValidationFailed
from devicefactory.http.streaming import stream_heavy
from devicefactory.http.transaction import NowDep, ReadSession, ReadSessionsDep, WriteSession, record_event
from devicefactory.tables.devices import Device

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

# The number of matches is counted up to here: "more than 10,000" past it (a bounded query).
COUNT_BOUND = 10_000
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


def device_oem_names(session: Session, device: Device) -> dict[str, str]:
    return oem_names(session, [device.reserved_by_oem_id, device.owner_oem_id])


@router.get("/devices")
def devices_page(request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    params = request.query_params
    error: ValidationFailed | None = None
    devices: Sequence[Device] = []
    next_cursor: str | None = None
    total: int | None = None
    try:
        search = forms.device_search(params)
        devices, next_cursor = service.search_devices(session, actor, search)
        total = related.count_devices(session, actor, search, bound=COUNT_BOUND + 1)
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
            "devices": [seen_by(device, actor) for device in devices],
            "total": total,
            "count_bound": COUNT_BOUND,
            "error": error,
            "values": values,
            "date_value": forms.datetime_local_value,
            "more_open": any(values[name] for name in MORE_FIELDS),
            "filtered": any(values[name] for name in forms.DEVICE_FIELDS),
            "next_url": next_url,
            "first_url": first_url,
            "csv_url": f"{PREFIX}/devices.csv?{forms.device_query(params, cursor=None, limit=None)}",
            "models": accounts.list_models(session),
            "status_options": [(status, status.capitalize()) for status in STATUSES],
            "page_sizes": forms.DEVICES_PAGES,
            "quick_filters": QUICK_FILTERS,
            "more_filters": MORE_FILTERS,
            "columns": COLUMNS,
            "oem_names": oem_names(session, [device.reserved_by_oem_id for device in devices]),
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/devices.csv")
def devices_csv(request: Request, actor: DashboardActor, pages: ReadSessionsDep) -> Response:
    """Every device the search matches, as the API's export streams it (docs/export.md):
    all pages, in DSN order, secrets masked for a viewer; an audit entry."""
    params = forms.device_search(request.query_params)
    params.pop("limit", None)

    def opened() -> export.DeviceExport:
        file = export.export_devices(actor, params, pages=pages)
        record_event(request, "devices.export", {"filters": params})
        return file

    return stream_heavy(request, actor, opened, {"Cache-Control": "no-store"})


@router.get("/devices/{dsn}")
def device_page(dsn: str, request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    device = service.get_device(session, actor, dsn)
    return render(
        request,
        "device.html",
        {
            "tab": "devices",
            "device": seen_by(device, actor),
            "may_reset": may_reset(actor, device),
            "steps": None,
            "cards": CARDS,
            "oem_names": device_oem_names(session, device),
        },
    )


@router.get("/devices/{dsn}/jobs")
def jobs_page(dsn: str, request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    """A device's jobs, and the other DSNs of the factory actions that touched it."""
    jobs = service.device_jobs(session, actor, dsn)
    context = {
        "tab": "devices",
        "dsn": dsn,
        "jobs": jobs,
        "related": related.related_dsns(session, actor, dsn),
        "related_per_action": related.RELATED_DSNS,
    }
    return render(request, "jobs.html", context)


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
            "oem_names": device_oem_names(session, device),
        },
    )
