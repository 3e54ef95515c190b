"""OEM::Viewer (SPEC §13): reads its OEM's devices and actions, changes nothing.

The write routes are walked from the app itself, so that a route added later is covered
without touching this file: every POST, PUT, PATCH and DELETE answers the viewer 403 and
leaves every table as it was. Only the viewer's own session and password are its to change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests import api
from tests.api import assert_error, ok
from tests.dashboard.conftest import Dash, dash
from tests.devices.test_export import EXPORT, add_viewer
from tests.world import World

from devicefactory.app import create_app
from devicefactory.config import Settings
from devicefactory.db import Base

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# The viewer's own session and password: not the factory's data, and its to change.
OWN_ACCOUNT = {
    "/users/sign_in",
    "/users/refresh_token",
    "/users/sign_out",
    "/users/password",
    "/dashboard/sign_in",
    "/dashboard/sign_out",
    "/dashboard/password",
}
SECRET = "WIFI-SECRET-7"
__all__ = ["dash"]  # the dashboard's fixture, used by name


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
            yield from _routes(route.original_router.routes)
        elif isinstance(route, APIRoute):
            yield route


def write_routes() -> list[tuple[str, str]]:
    """(method, path) of every write route of the app, the viewer's own account left out."""
    app = create_app(Settings(database_url="sqlite:///unused-by-the-walk.db"))
    found = {
        (method, route.path)
        for route in _routes(list(app.routes))
        for method in (route.methods or set()) & WRITE_METHODS
        if route.path not in OWN_ACCOUNT
    }
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


def snapshot(factory: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table."""
    with factory() as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def viewer_world(world: World, pool: Callable[[int], None]) -> dict[str, Any]:
    """A manufactured device of "modules" with a wifi_setup_key, a reserve action, a viewer."""
    pool(2)
    reservation = api.reservation(world, "mm", count=2)
    dsn = reservation.dsns[0]
    ok(api.manufacture(world, dsn, {**api.manufacture_body(1), "wifi_setup_key": SECRET}))
    viewer = add_viewer(world)
    return {"dsn": dsn, "action_id": reservation.action_id, "viewer": viewer}


def _path(path: str, world: World, ids: dict[str, Any]) -> str:
    values = {
        "dsn": ids["dsn"],
        "oem_id": world.oem_ids["modules"],
        "user_id": "1",
        "webhook_id": "1",
        "delivery_id": "1",
        "action_id": str(ids["action_id"]),
        "operation": "deactivate",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), path)


_LOG = {"file": ("f.log", api.log_line("AC000W000000001", "0a0b0c0d0e0f", "x").encode())}
# One body that every JSON write route parses past its fields: the role is what refuses.
_USER = {"email": "new@example.com", "password": "long enough pw", "role": "OEM::Viewer"}
_BODY = {
    "model": "AY001MTP1",
    "count": 1,
    "url": "https://example.com/hook",
    "events": ["action.finished"],
    "user": _USER,
    **_USER,
}


def _request(world: World, user: str, method: str, path: str) -> Any:
    headers = world.headers(user)
    if path == api.ACTIONS:
        return world.client.post(path, headers=headers, files=_LOG, data={"type": "manufacture"})
    if path.endswith("/certificate"):
        return world.client.request(method, path, headers=headers, content=b"-----BEGIN CERTIFICATE-----")
    return world.client.request(method, path, headers=headers, json=_BODY)


def test_the_walk_finds_the_write_routes() -> None:
    routes = write_routes()
    paths = {path for _, path in routes}
    assert {"/devicefactory/v1/devices/reserve", "/devicefactory/v1/factory_actions"} <= paths
    assert "/dashboard/actions/reserve" in paths
    assert len(routes) >= 20


@pytest.mark.parametrize(("method", "path"), write_routes())
def test_the_viewer_changes_nothing(
    method: str,
    path: str,
    world: World,
    viewer_world: dict[str, Any],
    session_factory: sessionmaker[Session],
    dash: Callable[[str], Dash],
) -> None:
    viewer = viewer_world["viewer"]
    url = _path(path, world, viewer_world)
    if path.startswith("/dashboard/"):
        page = dash(viewer)
        before = snapshot(session_factory)
        files = _LOG if path.endswith("/upload") else None
        response = page.post(url, {"model": "AY001MTP1", "count": "1", "type": "manufacture"}, files=files)
        assert response.status_code == 403, (url, response.status_code, response.text[:300])
    else:
        world.token(viewer)  # signed in before the snapshot
        before = snapshot(session_factory)
        response = _request(world, viewer, method, url)
        assert_error(response, 403, "AFS-403")
    assert snapshot(session_factory) == before


def test_admins_create_viewers(world: World) -> None:
    body = {"email": "v@example.com", "password": "long enough", "role": "OEM::Viewer"}
    made = world.client.post(
        f"{api.V1}/admin/users",
        json={"user": {**body, "oem_id": world.oem_ids["gateways"]}},
        headers=world.headers("ayla"),
    )
    assert made.status_code == 201, made.text
    body["email"] = "w@example.com"
    refused = world.client.post(f"{api.V1}/admin/users", json={"user": body}, headers=world.headers("mm"))
    assert_error(refused, 403, "AFS-403")


def test_what_the_viewer_reads(world: World, viewer_world: dict[str, Any]) -> None:
    viewer, dsn, action_id = viewer_world["viewer"], viewer_world["dsn"], viewer_world["action_id"]
    headers = world.headers(viewer)
    get = world.client.get
    device = ok(get(f"{api.DEVICES}/{dsn}", headers=headers)).json()["device"]
    assert device["wifi_setup_key"] == "****"
    assert device["mac"] == "000000000001"
    assert api.device(world, dsn, "mm")["wifi_setup_key"] == SECRET  # the maker still sees it
    found = ok(get(api.DEVICES, headers=headers)).json()["devices"]
    assert [d["dsn"] for d in found] == viewer_world_dsns(world)
    assert {d["wifi_setup_key"] for d in found} == {"****"}
    assert_error(get(api.DEVICES, params={"wifi_setup_key": "WIFI*"}, headers=headers), 403, "AFS-403")
    ok(get(f"{api.DEVICES}/{dsn}/jobs", headers=headers))
    actions = ok(get(api.ACTIONS, headers=headers)).json()["factory_actions"]
    assert [a["id"] for a in actions] == [action_id]
    detail = ok(get(f"{api.ACTIONS}/{action_id}", headers=headers)).json()
    assert {d["wifi_setup_key"] for d in detail["devices"]} == {"****"}
    for kind in ("csv", "log"):
        ok(get(f"{api.ACTIONS}/{action_id}/files/{kind}", headers=headers))
    # The bundle carries the DSNs' keys to the factory: not a viewer's (403: the action is
    # visible, so there is nothing to hide about its existence).
    for kind in ("xml", "failed"):
        assert_error(get(f"{api.ACTIONS}/{action_id}/files/{kind}", headers=headers), 403, "AFS-403")
    assert SECRET not in ok(get(EXPORT, headers=headers)).text
    # Another OEM's devices stay out of reach (404, as an unknown DSN).
    assert_error(get(f"{api.DEVICES}/{api.UNKNOWN_DSN}", headers=headers), 404, "AFS-404")


def viewer_world_dsns(world: World) -> list[str]:
    return [
        d["dsn"] for d in ok(world.client.get(api.DEVICES, headers=world.headers("mm"))).json()["devices"]
    ]


def test_the_viewer_never_reads_the_secret_on_any_read_route(
    world: World, viewer_world: dict[str, Any], dash: Callable[[str], Dash]
) -> None:
    """Every GET of the API and the dashboard, walked from the app, as the viewer."""
    app = world.client.app
    viewer = viewer_world["viewer"]
    page = dash(viewer)
    for route in _routes(list(app.routes)):  # type: ignore[attr-defined]
        if "GET" not in (route.methods or set()) or route.path in ("/dashboard/sign_in",):
            continue
        url = _path(route.path, world, viewer_world)
        if route.path.startswith("/dashboard"):
            response = page.get(url)
        else:
            response = world.client.get(url, headers=world.headers(viewer))
        assert SECRET not in response.text, url


def test_the_dashboard_offers_the_viewer_no_change(
    world: World, viewer_world: dict[str, Any], dash: Callable[[str], Dash]
) -> None:
    page = dash(viewer_world["viewer"])
    home = page.get("/dashboard").text
    for dialog in ("reserve-dialog", "upload-manufacture-dialog", "upload-provision-dialog"):
        assert f'data-dialog-open="{dialog}"' not in home
    device = page.get(f"/dashboard/devices/{viewer_world['dsn']}")
    assert device.status_code == 200
    assert SECRET not in device.text
    assert "****" in device.text
    assert "factory_reset" not in device.text
    action = page.get(f"/dashboard/actions/{viewer_world['action_id']}").text
    assert 'data-testid="file-csv"' in action
    assert 'data-testid="file-xml"' not in action
