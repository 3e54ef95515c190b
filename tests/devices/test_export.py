"""GET /devicefactory/v1/devices.csv: the DSN View search as a streamed file (SPEC §13).

On the fleet of test_search.py (nine devices of five OEMs with known fields and dates),
with the page size lowered so that every export crosses several pages.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from tests import api
from tests.api import assert_error, ok
from tests.conftest import day
from tests.dashboard.conftest import dash
from tests.devices.test_search import D, fleet, found
from tests.world import PASSWORD, World

from devicefactory.devices import export, queries
from devicefactory.devices.schemas import MASK

EXPORT = f"{api.V1}/devices.csv"
Params = Mapping[str, str]
__all__ = ["dash", "fleet"]  # the fixtures, used by name


def add_viewer(world: World, oem: str = "modules", admin: str = "mm_admin") -> str:
    """An OEM::Viewer of ``oem``, created through the admin API by its OEM::Admin; its name."""
    name = f"viewer_{oem}"
    email = f"{name}@example.com"
    body = {"user": {"email": email, "password": PASSWORD, "role": "OEM::Viewer"}}
    response = world.client.post(f"{api.V1}/admin/users", json=body, headers=world.headers(admin))
    assert response.status_code == 201, response.text
    assert response.json()["user"]["role"] == "OEM::Viewer"
    world.emails[name] = email
    return name


def exported(world: World, user: str, params: Params | None = None) -> list[dict[str, str]]:
    """The export's rows as dicts (the header checked)."""
    response = world.client.get(EXPORT, params=params, headers=world.headers(user))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "content-length" not in response.headers  # streamed as it is read
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == export.COLUMNS
    return [dict(zip(export.COLUMNS, row, strict=True)) for row in rows[1:]]


def numbers(rows: list[dict[str, str]]) -> list[int]:
    return [int(row["dsn"][-9:]) for row in rows]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "PAGE", 2)  # nine devices: five pages


# Filters of every kind: exact, wildcard, Ayla's filter[...] form, flags, dates, errors, action.
FILTERS: list[dict[str, str]] = [
    {},
    {"order": "desc"},
    {"dsn": "AC000W00000000?"},
    {"dsn": "AC000W0000000*", "order": "desc"},
    {"status": "manufactured"},
    {"model": "AY001MTP1"},
    {"mac": "00:11:22:33:44:01"},
    {"filter[manuf_sn_like]": "SN*"},
    {"manuf_model": "WD101a"},
    {"odm": "odm-east"},
    {"ads_connect_flag": "yes"},
    {"errors": "failure"},
    {"reserved_after": day(1)},
    {"manufactured_before": day(7), "model": "AY001MTP1"},
    {"cursor": "QUMwMDBXMDAwMDAwMDAz"},  # after AC000W000000003
]


def test_every_filter_gives_the_search_routes_devices_across_pages(
    world: World, fleet: dict[str, int]
) -> None:
    cases = [*FILTERS, {"action_id": str(fleet["modules_mtp1"])}]
    for user in ("ayla", "mm", "som", "product_admin"):
        wrong = [
            (params, want, got)
            for params in cases
            if (got := numbers(exported(world, user, params)))
            != (want := found(world, user, {**params, "limit": "500"}))
        ]
        assert wrong == [], f"{user}: {wrong}"
    assert numbers(exported(world, "ayla")) == list(range(1, 10))  # every row, five pages


def test_all_rows_across_many_pages_in_order(
    world: World, fleet: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    for page in (1, 3, 8, 9, 10):
        monkeypatch.setattr(export, "PAGE", page)
        assert numbers(exported(world, "ayla")) == list(range(1, 10)), page
        assert numbers(exported(world, "ayla", {"order": "desc"})) == list(range(9, 0, -1)), page
    # A date range takes the search's other plan (by date, then DSN): pages still join up.
    monkeypatch.setattr(export, "PAGE", 1)
    assert numbers(exported(world, "ayla", {"reserved_after": day(1)})) == [5, 6, 7, 8, 9]
    assert numbers(exported(world, "ayla", {"limit": "1"})) == list(range(1, 10))  # limit ignored


def test_the_columns_are_the_device_json(world: World, fleet: dict[str, int]) -> None:
    rows = {row["dsn"]: row for row in exported(world, "ayla")}
    for n in (1, 2, 7, 9):
        device = api.device(world, D[n])
        row = rows[D[n]]
        for name in export.COLUMNS:
            value = device[name]
            expected = (
                ""
                if value is None
                else ("true" if value is True else "false" if value is False else str(value))
            )
            assert row[name] == expected, (n, name)
    assert rows[D[1]]["wifi_setup_key"] == "KEY_1"  # not masked for the roles that write it


def test_cells_a_spreadsheet_would_run_are_escaped(world: World, fleet: dict[str, int]) -> None:
    body = {**api.manufacture_body(4), "model": "AY001MTP1", "hwsig": "=HYPERLINK(1)"}
    body |= {"manuf_model": "+cmd", "manuf_sn": "-2", "odm": "@sum", "module_sw_version": '1,"2"'}
    ok(api.manufacture(world, D[4], body))
    (row,) = exported(world, "mm", {"dsn": D[4]})
    assert (row["hwsig"], row["manuf_model"], row["manuf_sn"], row["odm"]) == (
        "'=HYPERLINK(1)",
        "'+cmd",
        "'-2",
        "'@sum",
    )
    assert row["module_sw_version"] == '1,"2"'  # quoted by the CSV writer, read back whole


def test_a_viewer_exports_its_oems_devices_with_secrets_masked(world: World, fleet: dict[str, int]) -> None:
    viewer = add_viewer(world)
    rows = exported(world, viewer)
    assert numbers(rows) == [1, 2, 3, 4, 5]  # what "modules" reserved, as its module maker sees
    assert {row["wifi_setup_key"] for row in rows} == {MASK}
    assert "KEY" not in world.client.get(EXPORT, headers=world.headers(viewer)).text
    # Filtering by the secret would spell it out: refused, before any byte of the file.
    for params in ({"wifi_setup_key": "K*"}, {"filter[wifi_setup_key]": "KEY_1"}):
        refused = world.client.get(EXPORT, params=params, headers=world.headers(viewer))
        assert_error(refused, 403, "AFS-403")
    # A product maker's viewer: what "products" owns (1) or reserved (9).
    products = add_viewer(world, "products", "product_admin")
    assert numbers(exported(world, products)) == [1, 9]


def test_the_tenant_wall(world: World, fleet: dict[str, int]) -> None:
    assert numbers(exported(world, "mm2")) == [6]
    assert numbers(exported(world, "mom2")) == []
    assert numbers(exported(world, "som", {"dsn": D[1]})) == []  # another OEM's DSN: no row
    assert numbers(exported(world, "som2")) == []


def test_errors_come_before_the_file(world: World, fleet: dict[str, int]) -> None:
    response = world.client.get(EXPORT, params={"colour": "red"}, headers=world.headers("mm"))
    assert_error(response, 422, "AFS-600")
    assert_error(world.client.get(EXPORT), 401, "AFS-401")
    # The ".json" suffix middleware and /devices/{dsn} leave the export alone.
    assert world.client.get(f"{api.DEVICES}/devices.csv", headers=world.headers("ayla")).status_code == 404


def test_past_the_heavy_read_bound_429(world: World, fleet: dict[str, int]) -> None:
    heavy = world.client.app.state.heavy_reads  # type: ignore[attr-defined]
    oem = world.oem_ids["modules"]
    slots = [heavy.enter(oem) for _ in range(heavy.limit)]
    try:
        refused = world.client.get(EXPORT, headers=world.headers("mm"))
        message = assert_error(refused, 429, "AFS-429")
        assert "in flight for your OEM" in message
        assert int(refused.headers["Retry-After"]) >= 1
        assert numbers(exported(world, "mom")) == [1]  # another OEM is not held back
    finally:
        for slot in slots:
            slot.release()
    assert numbers(exported(world, "mm")) == [1, 2, 3, 4, 5]
    assert heavy.in_flight(oem) == 0


@pytest.fixture
def connections(session_factory: sessionmaker[Session]) -> Iterator[Callable[[], int]]:
    """How many database connections are checked out right now."""
    engine = session_factory.kw["bind"]
    held = [0]

    def checkout(*_: Any) -> None:
        held[0] += 1

    def checkin(*_: Any) -> None:
        held[0] -= 1

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    yield lambda: held[0]
    event.remove(engine, "checkout", checkout)
    event.remove(engine, "checkin", checkin)


def test_a_client_that_goes_away_stops_the_export_and_frees_its_slot(
    world: World, fleet: dict[str, int], monkeypatch: pytest.MonkeyPatch, connections: Callable[[], int]
) -> None:
    """Straight through ASGI: the client leaves after the first page; no page is read after
    it, no connection is held between pages, and the OEM's slot is free again."""
    monkeypatch.setattr(export, "PAGE", 1)
    app = world.client.app
    token = world.token("mm")
    pages_read: list[int] = []
    real = queries.search_statement

    def counting(*args: Any, **kwargs: Any) -> Any:
        pages_read.append(connections())
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "search_statement", counting)
    sent: list[bytes] = []
    held_while_sending: list[int] = []

    async def run() -> None:
        gone = anyio.Event()
        asked = False

        async def receive() -> MutableMapping[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
            elif message["type"] == "http.response.body" and message.get("body"):
                sent.append(message["body"])
                held_while_sending.append(connections())
                if len(sent) == 2:  # the header and the first page
                    gone.set()
                    await anyio.sleep(0.3)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": EXPORT,
            "raw_path": EXPORT.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver"), (b"authorization", f"auth_token {token}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        with anyio.fail_after(10):
            await app(scope, receive, send)

    # A thread of its own: a browser test on this worker may have left an event loop running here.
    with ThreadPoolExecutor(1) as loop_thread:
        loop_thread.submit(anyio.run, run).result()
    assert 2 <= len(sent) < 6, sent  # five device rows of "modules": it stopped early
    assert len(pages_read) < 5, pages_read
    assert set(held_while_sending) == {0}  # no connection held while a page is sent
    heavy = app.state.heavy_reads  # type: ignore[attr-defined]
    assert heavy.in_flight(world.oem_ids["modules"]) == 0
    assert numbers(exported(world, "mm")) == [1, 2, 3, 4, 5]  # and the next export runs


def test_the_dashboards_export_link_gives_the_pages_search_as_csv(
    world: World, fleet: dict[str, int], dash: Any
) -> None:
    """DSN View's "Export CSV": the search on the page, every page of it, with the dashboard's
    session; a viewer's secrets masked; signed out, no file."""
    operator = dash("mm")
    page = operator.get("/dashboard/devices", params={"status": "manufactured", "limit": "1"})
    assert page.status_code == 200, page.text
    link = re.search(r'href="(/dashboard/devices\.csv[^"]*)"[^>]*data-testid="devices-csv"', page.text)
    assert link is not None, "no export link"
    url = html.unescape(link[1])
    assert "status=manufactured" in url
    assert "limit" not in url
    response = operator.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == export.COLUMNS
    got = [int(row[0][-9:]) for row in rows[1:]]
    assert got == found(world, "mm", {"status": "manufactured", "limit": "500"})
    viewer = dash(add_viewer(world))
    masked = list(csv.DictReader(io.StringIO(viewer.get("/dashboard/devices.csv").text)))
    assert masked
    assert {row["wifi_setup_key"] for row in masked} == {MASK}
    signed_out = world.client.get("/dashboard/devices.csv", follow_redirects=False)
    assert signed_out.status_code in (302, 303)
    assert "text/csv" not in signed_out.headers.get("content-type", "")
