"""GET /devicefactory/v1/devices: the DSN View search (§6).

One small fleet, built through the API with the clock moved two days between steps, so
that every filter, wildcard and date bound has an exact, known answer:

    n  model      reserved by (day)   status        notes
    1  AY001MTP1  modules (11-22)     provisioned   made 11-28, provisioned by products 11-30
    2  AY001MTP1  modules (11-22)     manufactured  made 11-28; its latest job failed
    3  AY001MTP1  modules (11-22)     manufactured  made 11-30; its latest job failed
    4  AY001MTP1  modules (11-22)     reserved
    5  AY001MTC2  modules (11-24)     reserved
    6  AY001MTP1  modules2 (11-24)    manufactured  made 11-28
    7  AY001RTA   gateways (11-26)    provisioned   provisioned by gateways 12-02
    8  AY001RTA   gateways (11-26)    reserved
    9  AY001RTA   products (11-26)    reserved

Every expectation names devices by n (AC000W00000000n); date-only bounds fall on days
with no event, so they read the same whether a bound is a moment or a whole day.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from tests import api
from tests.api import FAILURES, advance, assert_error, ok, reservation
from tests.conftest import FrozenClock, day
from tests.world import USERS, World

V1 = "/devicefactory/v1"
SEARCH = f"{V1}/devices"
ALL = list(range(1, 10))
D = {n: f"AC000W{n:09d}" for n in ALL}
DOM = "2026/11/20 08:00:00 UTC"

Pool = Callable[[int], None]
Params = Mapping[str, str]


# --- the fleet ----------------------------------------------------------------------------


def manufacture(world: World, user: str, n: int, **fields: Any) -> httpx2.Response:
    """Manufactures device n of the fleet (the model and dom_at unless given)."""
    return api.manufacture(world, D[n], {"model": "AY001MTP1", "dom_at": DOM, **fields}, user)


def provision(world: World, user: str, n: int, **fields: Any) -> httpx2.Response:
    return api.provision(world, D[n], fields, user)


@pytest.fixture
def fleet(world: World, pool: Pool, clock: FrozenClock) -> dict[str, int]:
    """Builds the fleet of the module docstring; returns the reserve action ids by name."""
    pool(9)
    clock.start_timeline()
    actions = {"modules_mtp1": reservation(world, "mm", "AY001MTP1", 4).action_id}  # 1-4, 11-22 09:00
    advance(world, clock, days=2)
    actions["modules_mtc2"] = reservation(world, "mm", "AY001MTC2", 1).action_id  # 5, 11-24
    actions["modules2"] = reservation(world, "mm2", "AY001MTP1", 1).action_id  # 6
    advance(world, clock, days=2)
    actions["gateways"] = reservation(world, "som", "AY001RTA", 2).action_id  # 7, 8, 11-26
    actions["products"] = reservation(world, "product_admin", "AY001RTA", 1).action_id  # 9
    advance(world, clock, days=2)  # 11-28
    ok(
        manufacture(
            world,
            "mm",
            1,
            mac="00:11:22:33:44:01",
            hwsig="hw-a",
            manuf_model="WD101a",
            manuf_sn="SN-001",
            odm="odm-east",
            module_sw_version="1.0",
            wifi_setup_key="KEY_1",
            ads_connect_flag=True,
        )
    )
    ok(
        manufacture(
            world,
            "mm",
            2,
            mac="00-11-22-33-44-AB",
            hwsig="hw-b",
            manuf_model="WD101a",
            manuf_sn="SN-002",
            odm="odm-west",
            module_sw_version="1.1",
            wifi_setup_key="KEYA1",
            ads_connect_flag=False,
        )
    )
    ok(
        manufacture(
            world,
            "mm2",
            6,
            mac="001122334406",
            hwsig="hw-d",
            manuf_model="WD101a",
            manuf_sn="SN-006",
            module_sw_version="2.0",
            wifi_setup_key="KEY_2",
            ads_connect_flag="1",
        )
    )
    advance(world, clock, days=2)  # 11-30
    ok(
        manufacture(
            world,
            "mm",
            3,
            mac="001122334403",
            hwsig="hw-c",
            manuf_model="WD200",
            manuf_sn="XN-003",
            odm="odm-east",
            module_sw_version="1.0",
            wifi_setup_key="K%Y_9",
        )
    )
    ok(provision(world, "mom", 1, model="AY001MTP1", oem_model="lamp", oem_host_version="2.0"))
    advance(world, clock, days=2)  # 12-02
    ok(
        provision(
            world,
            "som",
            7,
            model="AY001RTA",
            oem_model="gw",
            oem_host_version="1.0",
            mac="AA:BB:CC:DD:EE:07",
            manuf_model="linux",
            manuf_sn="GW-007",
            odm="odm-gw",
            module_sw_version="devd 1.0",
            dom_at=DOM,
        )
    )
    # Refusals on reachable devices: each leaves a failed job as the device's latest.
    again = manufacture(world, "mm", 2, mac="0011223344ab", hwsig="hw-b")
    assert (again.status_code, again.json()["error"][0]["code"]) == (422, "AFS-606"), again.text
    # A product maker's refused provision of 3 is its own record (§11); the module maker's
    # own refusal after it is 3's latest failed job.
    missing = provision(world, "mom", 3, model="AY001MTP1", oem_model="lamp")
    assert (missing.status_code, missing.json()["error"][0]["code"]) == (422, "AFS-607"), missing.text
    again = manufacture(world, "mm", 3, mac="001122334403", hwsig="hw-c")
    assert (again.status_code, again.json()["error"][0]["code"]) == (422, "AFS-606"), again.text
    return actions


# --- helpers ------------------------------------------------------------------------------


def search(world: World, user: str, params: Params | None = None, path: str = SEARCH) -> dict[str, Any]:
    response = world.client.get(path, params=params, headers=world.headers(user))
    assert response.status_code == 200, f"{params}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    assert set(body) == {"devices", "next_cursor"}, body
    return body


def found(world: World, user: str, params: Params | None = None, path: str = SEARCH) -> list[int]:
    """The devices of one page, as fleet numbers, in the order returned."""
    return [int(device["dsn"][-9:]) for device in search(world, user, params, path)["devices"]]


def check(world: World, user: str, cases: list[tuple[Params, list[int]]], path: str = SEARCH) -> None:
    """Every case at once, so that one run reports every wrong answer."""
    wrong = [
        (dict(params), expected, got)
        for params, expected in cases
        if (got := found(world, user, params, path)) != expected
    ]
    assert wrong == [], "\n".join(f"{p}: expected {e}, got {g}" for p, e, g in wrong)


def pages(world: World, user: str, params: Params, path: str = SEARCH) -> list[list[int]]:
    """Follow next_cursor until null; the non-empty pages, as fleet numbers."""
    result: list[list[int]] = []
    cursor: str | None = None
    for _ in range(20):
        body = search(world, user, {**params, **({"cursor": cursor} if cursor else {})}, path)
        result.append([int(device["dsn"][-9:]) for device in body["devices"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
        assert cursor
    else:
        pytest.fail("next_cursor never became null")
    while result and not result[-1]:
        result.pop()
    return result


def lenient(world: World) -> TestClient:
    """A client on the same app that reports a server error as a 500 instead of raising it."""
    return TestClient(world.client.app, raise_server_exceptions=False)


def assert_afs600(response: httpx2.Response, *mentions: str) -> None:
    message = assert_error(response, 422, "AFS-600")
    assert message.startswith(FAILURES), message
    for mention in mentions:
        assert mention in message, (mention, message)


# --- one device, every field ---------------------------------------------------------------


def test_a_device_in_the_results_carries_every_field(world: World, fleet: dict[str, int]) -> None:
    body = search(world, "ayla", {"dsn": D[1]})
    assert body["next_cursor"] is None
    (device,) = body["devices"]
    assert device["public_key"].startswith("-----BEGIN RSA PUBLIC KEY-----\n")
    assert {k: v for k, v in device.items() if k != "public_key"} == {
        "dsn": D[1],
        "model": "AY001MTP1",
        "mac": "001122334401",
        "hwsig": "hw-a",
        "odm": "odm-east",
        "manuf_model": "WD101a",
        "manuf_sn": "SN-001",
        "module_sw_version": "1.0",
        "oem_host_version": "2.0",
        "wifi_setup_key": "KEY_1",
        "ads_connect_flag": True,
        "dom_at": "2026-11-20T08:00:00Z",
        "oem": world.oem_ids["products"],
        "oem_model": "lamp",
        "status": "provisioned",
        "reserved_by": world.oem_ids["modules"],
        "reserve_action_id": fleet["modules_mtp1"],
        "reserved_at": f"{day(0)}T09:00:00Z",
        "manufactured_at": f"{day(6)}T09:00:00Z",
        "provisioned_at": f"{day(8)}T09:00:00Z",
        "verified_at": None,
        "last_job_failed": False,
    }
    # The same device through the detail endpoint.
    detail = world.client.get(f"{V1}/devices/{D[1]}", headers=world.headers("ayla"))
    assert detail.json() == {"device": device}


def test_no_filter_returns_the_whole_fleet_in_dsn_order(world: World, fleet: dict[str, int]) -> None:
    body = search(world, "ayla")
    assert [d["dsn"] for d in body["devices"]] == [D[n] for n in ALL]
    assert body["next_cursor"] is None
    statuses = {int(d["dsn"][-9:]): (d["status"], d["last_job_failed"]) for d in body["devices"]}
    assert statuses == {
        1: ("provisioned", False),
        2: ("manufactured", True),
        3: ("manufactured", True),
        4: ("reserved", False),
        5: ("reserved", False),
        6: ("manufactured", False),
        7: ("provisioned", False),
        8: ("reserved", False),
        9: ("reserved", False),
    }


# --- exact filters --------------------------------------------------------------------------


def test_every_exact_filter(world: World, fleet: dict[str, int]) -> None:
    check(
        world,
        "ayla",
        [
            ({"dsn": D[3]}, [3]),
            ({"dsn": D[3].lower()}, [3]),
            ({"dsn": "AC000W00000000"}, []),  # exact, not a prefix
            ({"dsn": "AC000W999999999"}, []),
            ({"mac": "001122334401"}, [1]),
            ({"mac": "00:11:22:33:44:01"}, [1]),
            ({"mac": "00-11-22-33-44-AB"}, [2]),
            ({"mac": "0011223344AB"}, [2]),
            ({"mac": "aabbccddee07"}, [7]),
            ({"mac": "001122334499"}, []),
            ({"status": "reserved"}, [4, 5, 8, 9]),
            ({"status": "manufactured"}, [2, 3, 6]),
            ({"status": "provisioned"}, [1, 7]),
            ({"model": "AY001MTP1"}, [1, 2, 3, 4, 6]),
            ({"model": "AY001MTC2"}, [5]),
            ({"model": "AY001RTA"}, [7, 8, 9]),
            ({"model": "AY001"}, []),
            ({"manuf_model": "WD101a"}, [1, 2, 6]),
            ({"manuf_model": "WD200"}, [3]),
            ({"manuf_model": "linux"}, [7]),
            ({"manuf_sn": "SN-002"}, [2]),
            ({"manuf_sn": "GW-007"}, [7]),
            ({"manuf_sn": "SN-00"}, []),
            ({"oem_model": "lamp"}, [1]),
            ({"oem_model": "gw"}, [7]),
            ({"oem_host_version": "2.0"}, [1]),
            ({"oem_host_version": "1.0"}, [7]),
            ({"hwsig": "hw-c"}, [3]),
            ({"hwsig": "mac-aabbccddee07"}, [7]),
            ({"hwsig": "hw"}, []),
            ({"odm": "odm-east"}, [1, 3]),
            ({"odm": "odm-west"}, [2]),
            ({"odm": "odm-gw"}, [7]),
            ({"module_sw_version": "1.0"}, [1, 3]),
            ({"module_sw_version": "2.0"}, [6]),
            ({"module_sw_version": "devd 1.0"}, [7]),
            ({"wifi_setup_key": "KEY_1"}, [1]),
            ({"wifi_setup_key": "K%Y_9"}, [3]),
            ({"wifi_setup_key": "KEY"}, []),
            # Several filters narrow together.
            ({"model": "AY001MTP1", "status": "manufactured", "odm": "odm-east"}, [3]),
            ({"manuf_model": "WD101a", "module_sw_version": "1.1"}, [2]),
            ({"manuf_model": "WD101a", "oem_model": "gw"}, []),
            # An empty parameter filters nothing.
            ({"mac": "", "status": "provisioned"}, [1, 7]),
        ],
    )


def test_ads_connect_flag_accepts_yes_no_true_false_1_0(world: World, fleet: dict[str, int]) -> None:
    # 1 and 6 were made with the flag set, 2 with it cleared; the others never had one.
    check(
        world,
        "ayla",
        [
            ({"ads_connect_flag": "yes"}, [1, 6]),
            ({"ads_connect_flag": "true"}, [1, 6]),
            ({"ads_connect_flag": "1"}, [1, 6]),
            ({"ads_connect_flag": "no"}, [2]),
            ({"ads_connect_flag": "false"}, [2]),
            ({"ads_connect_flag": "0"}, [2]),
            ({"ads_connect_flag": "yes", "manuf_sn": "SN-006"}, [6]),
        ],
    )


def test_errors_filter_keeps_devices_whose_latest_job_failed(world: World, fleet: dict[str, int]) -> None:
    check(
        world,
        "ayla",
        [
            ({"errors": "failure"}, [2, 3]),
            ({"errors": "success"}, [1, 4, 5, 6, 7, 8, 9]),
            ({"errors": "failure", "manuf_model": "WD200"}, [3]),
            ({"errors": "success", "status": "manufactured"}, [6]),
        ],
    )
    jobs = world.client.get(f"{V1}/devices/{D[2]}/jobs", headers=world.headers("mm")).json()["jobs"]
    assert [(j["operation"], j["result"], j["error_code"]) for j in jobs] == [
        ("reserve", "success", None),
        ("manufacture", "success", None),
        ("manufacture", "failure", "AFS-606"),
    ]
    # A later success clears the mark: provision 3 properly.
    fixed = provision(world, "mom", 3, model="AY001MTP1", oem_model="bulb", oem_host_version="3.0")
    assert fixed.status_code == 200, fixed.text
    check(world, "ayla", [({"errors": "failure"}, [2]), ({"errors": "success", "oem_model": "bulb"}, [3])])
    # Each caller sees only the failures in its reach.
    check(world, "mm", [({"errors": "failure"}, [2])])
    check(world, "mom", [({"errors": "failure"}, []), ({"errors": "success"}, [1, 3])])


# --- wildcards ------------------------------------------------------------------------------


def test_dsn_wildcards(world: World, fleet: dict[str, int]) -> None:
    check(
        world,
        "ayla",
        [
            ({"dsn": "AC000W*"}, ALL),
            ({"dsn": "ac000w*"}, ALL),
            ({"dsn": "*3"}, [3]),
            ({"dsn": "*"}, ALL),
            ({"dsn": "AC000W00000000?"}, ALL),  # ? is exactly one character
            ({"dsn": "AC000W0000000?"}, []),
            ({"dsn": "AC000W0000000??"}, ALL),
            ({"dsn": "AC000W0000000*"}, ALL),
            ({"dsn": "AC?00W*7"}, [7]),
            ({"dsn": "*00000000?", "status": "provisioned"}, [1, 7]),
            ({"dsn": "AC000W*", "model": "AY001MTC2"}, [5]),
            ({"dsn": "AC000X*"}, []),
            # % and _ are not wildcards in our form.
            ({"dsn": "AC000W%"}, []),
            ({"dsn": "AC000W%*"}, []),
            ({"dsn": "AC000W_00000000*"}, []),
            ({"dsn": "%"}, []),
        ],
    )


def test_wifi_setup_key_wildcards_and_literal_percent_and_underscore(
    world: World, fleet: dict[str, int]
) -> None:
    # Keys: 1 KEY_1, 2 KEYA1, 3 K%Y_9, 6 KEY_2.
    check(
        world,
        "ayla",
        [
            ({"wifi_setup_key": "KEY*"}, [1, 2, 6]),
            ({"wifi_setup_key": "KEY?1"}, [1, 2]),
            ({"wifi_setup_key": "KEY_*"}, [1, 6]),  # _ is literal: KEYA1 does not match
            ({"wifi_setup_key": "KEY_?"}, [1, 6]),
            ({"wifi_setup_key": "K%*"}, [3]),  # % is literal: KEY_1 does not match
            ({"wifi_setup_key": "?%Y_9"}, [3]),
            ({"wifi_setup_key": "*_?"}, [1, 3, 6]),
            ({"wifi_setup_key": "*1"}, [1, 2]),
            ({"wifi_setup_key": "*"}, [1, 2, 3, 6]),
            ({"wifi_setup_key": "K?Y*"}, [1, 2, 3, 6]),
            ({"wifi_setup_key": "KEY?"}, []),
            ({"wifi_setup_key": "%*"}, []),
            ({"wifi_setup_key": "_*"}, []),
        ],
    )


def test_wildcards_are_literal_in_the_other_fields_of_our_form(world: World, fleet: dict[str, int]) -> None:
    check(
        world,
        "ayla",
        [
            ({"manuf_sn": "SN-*"}, []),
            ({"hwsig": "hw-?"}, []),
            ({"mac": "00112233440*"}, []),
            ({"odm": "odm*"}, []),
        ],
    )


# --- date ranges ----------------------------------------------------------------------------


def test_every_date_bound(world: World, fleet: dict[str, int]) -> None:
    check(
        world,
        "ayla",
        [
            # Reserved 11-22 (1-4), 11-24 (5, 6), 11-26 (7-9), all at 09:00 UTC.
            ({"reserved_after": day(1)}, [5, 6, 7, 8, 9]),
            ({"reserved_before": day(1)}, [1, 2, 3, 4]),
            ({"reserved_after": day(1), "reserved_before": day(3)}, [5, 6]),
            ({"reserved_after": day(5)}, []),
            ({"reserved_before": day(-1)}, []),
            ({"reserved_after": day(-21), "reserved_before": day(39)}, ALL),
            ({"reserved_after": f"{day(2)}T08:59:59Z"}, [5, 6, 7, 8, 9]),
            ({"reserved_after": f"{day(2)}T09:00:01Z"}, [7, 8, 9]),
            ({"reserved_before": f"{day(2)}T09:00:01Z"}, [1, 2, 3, 4, 5, 6]),
            ({"reserved_before": f"{day(2)}T08:59:59Z"}, [1, 2, 3, 4]),
            ({"reserved_after": f"{day(2)}T10:00:00+02:00"}, [5, 6, 7, 8, 9]),  # 08:00 UTC
            # Manufactured 11-28 (1, 2, 6), 11-30 (3); never: 4, 5, 7, 8, 9.
            ({"manufactured_after": day(5)}, [1, 2, 3, 6]),
            ({"manufactured_after": day(7)}, [3]),
            ({"manufactured_before": day(7)}, [1, 2, 6]),
            ({"manufactured_before": day(39)}, [1, 2, 3, 6]),
            ({"manufactured_after": day(7), "manufactured_before": day(9)}, [3]),
            ({"manufactured_after": f"{day(6)}T09:00:01Z"}, [3]),
            # Provisioned 11-30 (1), 12-02 (7).
            ({"provisioned_after": day(-21)}, [1, 7]),
            ({"provisioned_after": day(9)}, [7]),
            ({"provisioned_before": day(9)}, [1]),
            ({"provisioned_after": f"{day(8)}T08:59:59Z"}, [1, 7]),
            ({"provisioned_after": f"{day(8)}T09:00:01Z"}, [7]),
            ({"provisioned_after": day(11)}, []),
            # Dates combine with each other and with the other filters.
            ({"reserved_before": day(1), "manufactured_after": day(7)}, [3]),
            ({"status": "manufactured", "manufactured_before": day(7)}, [2, 6]),
            ({"model": "AY001RTA", "reserved_after": day(3), "provisioned_before": day(39)}, [7]),
        ],
    )


# --- the Ayla client form ---------------------------------------------------------------------


def test_ayla_filter_form(world: World, fleet: dict[str, int]) -> None:
    check(
        world,
        "ayla",
        [
            ({"filter[mac_like]": "*4401"}, [1]),
            ({"filter[mac_like]": "00112233*"}, [1, 2, 3, 6]),
            ({"filter[mac_like]": "%44ab"}, [2]),
            ({"filter[mac]": "001122334403"}, [3]),
            ({"filter[mac]": "00:11:22:33:44:03"}, [3]),
            ({"filter[manuf_sn_like]": "SN-*"}, [1, 2, 6]),
            ({"filter[manuf_sn_like]": "SN-%"}, [1, 2, 6]),
            ({"filter[manuf_sn_like]": "*-00*"}, [1, 2, 3, 6, 7]),
            ({"filter[manuf_sn]": "SN-002"}, [2]),
            ({"filter[manuf_sn]": "SN-*"}, []),  # exact: no wildcard
            ({"filter[dsn_like]": "%1"}, [1]),
            ({"filter[dsn_like]": "AC000W*"}, ALL),
            ({"filter[dsn]": D[4]}, [4]),
            ({"filter[status]": "reserved"}, [4, 5, 8, 9]),
            ({"filter[model]": "AY001RTA"}, [7, 8, 9]),
            ({"filter[hwsig_like]": "hw-*"}, [1, 2, 3, 6]),
            ({"filter[odm_like]": "odm-*"}, [1, 2, 3, 7]),
            ({"filter[module_sw_version_like]": "1.*"}, [1, 2, 3]),
            ({"filter[oem_model_like]": "*a*"}, [1]),
            ({"filter[wifi_setup_key_like]": "KEY*"}, [1, 2, 6]),
            ({"filter[wifi_setup_key_like]": "KEY_*"}, [1, 6]),
            ({"filter[ads_connect_flag]": "true"}, [1, 6]),
            ({"filter[ads_connect_flag]": "false"}, [2]),
            # Both forms in one query.
            ({"filter[model]": "AY001MTP1", "status": "manufactured"}, [2, 3, 6]),
            ({"filter[manuf_sn_like]": "SN-*", "order_by": "dsn"}, [1, 2, 6]),
            ({"filter[manuf_sn_like]": "SN-*", "order": "desc", "order_by": "dsn"}, [6, 2, 1]),
            ({"filter[manuf_sn_like]": "SN-*", "order": "asc"}, [1, 2, 6]),
        ],
    )


def test_json_suffix_and_descending_order(world: World, fleet: dict[str, int]) -> None:
    path = f"{SEARCH}.json"
    check(
        world,
        "ayla",
        [
            ({"filter[mac_like]": "00112233*"}, [1, 2, 3, 6]),
            ({"filter[manuf_sn_like]": "SN-*", "order": "desc", "order_by": "dsn"}, [6, 2, 1]),
            ({"order": "desc"}, ALL[::-1]),
            ({"order": "desc", "dsn": "AC000W*", "status": "reserved"}, [9, 8, 5, 4]),
            ({"status": "provisioned"}, [1, 7]),
        ],
        path,
    )
    # The same form as a module maker sees it: only its own reservations.
    check(
        world,
        "mm",
        [
            ({"filter[mac_like]": "00112233*"}, [1, 2, 3]),
            ({"filter[manuf_sn_like]": "SN-*", "order": "desc", "order_by": "dsn"}, [2, 1]),
        ],
        path,
    )
    with_query = world.client.get(
        f"{SEARCH}.json?filter[manuf_sn_like]=SN-*&order=desc&order_by=dsn", headers=world.headers("ayla")
    )
    assert with_query.status_code == 200, with_query.text
    assert [d["dsn"] for d in with_query.json()["devices"]] == [D[6], D[2], D[1]]


# --- pagination ---------------------------------------------------------------------------------


def test_pagination_follows_next_cursor_across_pages(world: World, fleet: dict[str, int]) -> None:
    assert pages(world, "ayla", {"limit": "2"}) == [[1, 2], [3, 4], [5, 6], [7, 8], [9]]
    assert pages(world, "ayla", {"limit": "2", "order": "desc"}) == [[9, 8], [7, 6], [5, 4], [3, 2], [1]]
    assert pages(world, "ayla", {"limit": "3"}) == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert pages(world, "ayla", {"limit": "1", "status": "provisioned"}) == [[1], [7]]
    assert pages(world, "ayla", {"limit": "2", "status": "reserved"}) == [[4, 5], [8, 9]]
    assert pages(world, "ayla", {"limit": "2", "dsn": "AC000W*", "errors": "success"}) == [
        [1, 4],
        [5, 6],
        [7, 8],
        [9],
    ]
    assert pages(world, "ayla", {"limit": "500"}) == [ALL]
    assert pages(world, "mm", {"limit": "2"}) == [[1, 2], [3, 4], [5]]
    assert pages(world, "mm", {"limit": "2", "order": "desc"}) == [[5, 4], [3, 2], [1]]
    assert pages(world, "som", {"limit": "1"}) == [[7], [8]]
    assert pages(
        world,
        "ayla",
        {"filter[model]": "AY001MTP1", "order": "desc", "order_by": "dsn", "limit": "2"},
        f"{SEARCH}.json",
    ) == [[6, 4], [3, 2], [1]]
    # A short last page ends the walk.
    last = search(world, "ayla", {"limit": "5", "cursor": cursor_after(world, 5)})
    assert [d["dsn"] for d in last["devices"]] == [D[6], D[7], D[8], D[9]]
    assert last["next_cursor"] is None


def cursor_after(world: World, n: int) -> str:
    """The next_cursor ayla gets after a first page that ends at device n."""
    body = search(world, "ayla", {"limit": str(n)})
    assert body["devices"][-1]["dsn"] == D[n]
    cursor: str = body["next_cursor"]
    return cursor


def test_a_cursor_never_opens_the_tenant_wall(world: World, fleet: dict[str, int]) -> None:
    # Cursors ayla was handed, replayed by other tenants, give only what they could see anyway.
    cursor = cursor_after(world, 1)
    assert found(world, "mm2", {"cursor": cursor}) == [6]
    assert found(world, "mm2", {"cursor": cursor_after(world, 6)}) == []
    assert found(world, "som2", {"cursor": cursor}) == []
    assert found(world, "mom", {"cursor": cursor}) == []
    assert found(world, "mm", {"cursor": cursor_after(world, 3)}) == [4, 5]


# --- bad parameters -------------------------------------------------------------------------------


BAD_PARAMETERS: list[tuple[dict[str, str], tuple[str, ...]]] = [
    ({"colour": "red"}, ("colour",)),
    ({"filter[colour]": "red"}, ("colour",)),
    ({"filter[colour_like]": "r*"}, ("colour",)),
    ({"reserved_after": "2026-13-01"}, ("reserved_after",)),
    ({"reserved_before": "yesterday"}, ("reserved_before",)),
    ({"manufactured_after": "2026-11-22T25:00:00Z"}, ("manufactured_after",)),
    ({"manufactured_before": "22/11/2026"}, ("manufactured_before",)),
    ({"provisioned_after": "2026-11-31"}, ("provisioned_after",)),
    ({"provisioned_before": "soon"}, ("provisioned_before",)),
    ({"limit": "0"}, ("limit",)),
    ({"limit": "501"}, ("limit",)),
    ({"limit": "abc"}, ("limit",)),
    ({"limit": "-1"}, ("limit",)),
    ({"limit": "2.5"}, ("limit",)),
    ({"limit": "\u00b2"}, ("limit",)),  # superscript two: str.isdigit() but not an integer
    ({"status": "broken"}, ("status",)),
    ({"filter[status]": "broken"}, ("status",)),
    ({"errors": "maybe"}, ("errors",)),
    ({"ads_connect_flag": "maybe"}, ("ads_connect_flag",)),
    ({"filter[ads_connect_flag]": "2"}, ("ads_connect_flag",)),
    ({"order": "sideways"}, ("order",)),
    ({"order_by": "mac"}, ("order_by",)),
    ({"cursor": "!!!"}, ("cursor",)),
    ({"cursor": "zzzz"}, ("cursor",)),
    ({"cursor": "AAAA"}, ("cursor",)),
]


def test_bad_parameters_are_afs600_naming_the_parameter(world: World, fleet: dict[str, int]) -> None:
    wrong, client = [], lenient(world)
    for params, mentions in BAD_PARAMETERS:
        response = client.get(SEARCH, params=params, headers=world.headers("ayla"))
        try:
            assert_afs600(response, *mentions)
        except AssertionError as error:
            wrong.append(f"{params}: {error}")
    assert wrong == [], "\n".join(wrong)


def test_every_problem_is_listed_in_one_answer(world: World, fleet: dict[str, int]) -> None:
    response = world.client.get(
        f"{SEARCH}.json",
        params={"limit": "0", "status": "broken", "colour": "red", "reserved_after": "never", "dsn": "*"},
        headers=world.headers("mm"),
    )
    assert_afs600(response, "limit", "status", "colour", "reserved_after")


def test_odd_values_never_cause_a_server_error(world: World, fleet: dict[str, int]) -> None:
    odd = [
        {"mac": "\x00"},
        {"dsn": "AC000W\x00*"},
        {"hwsig": "a\x00b"},
        {"filter[manuf_sn_like]": "\x00*"},
        {"wifi_setup_key": "\\*"},
        {"dsn": "*\\"},
        {"dsn": "A" * 2000},
        {"manuf_sn": "x" * 5000},
        {"odm": "\u00e9\u4e2d\U0001f600"},
        {"reserved_after": "9999-12-31T23:59:59Z"},
        {"reserved_before": "0001-01-01"},
    ]
    statuses, client = {}, lenient(world)
    for params in odd:
        response = client.get(SEARCH, params=params, headers=world.headers("ayla"))
        statuses[repr(params)[:60]] = response.status_code
        if response.status_code == 200:
            assert response.json()["devices"] == [], (params, response.text)
        elif response.status_code == 422:
            assert_afs600(response)
    assert {k: v for k, v in statuses.items() if v not in (200, 422)} == {}


def test_unauthenticated_search_is_401(world: World, fleet: dict[str, int]) -> None:
    response = world.client.get(SEARCH)
    assert response.status_code == 401
    assert response.json()["error"][0]["code"] == "AFS-401"


# --- the tenant wall --------------------------------------------------------------------------------


REACH = {
    "ayla": ALL,
    # Module makers: what their OEM reserved (1 stays visible to modules after products owns it).
    "mm": [1, 2, 3, 4, 5],
    "mm_admin": [1, 2, 3, 4, 5],
    "mm2": [6],
    # Module OEM maker: only what its OEM owns (not 3, which it could still provision).
    "mom": [1],
    # The admin of a product OEM acts as module OEM and software OEM: owned or reserved.
    "product_admin": [1, 9],
    "mom2": [],
    # Software OEM makers: reserved or owned by their OEM.
    "som": [7, 8],
    "gateway_admin": [7, 8],
    "som2": [],
}


def test_every_role_sees_only_devices_in_its_reach(world: World, fleet: dict[str, int]) -> None:
    assert set(REACH) == set(USERS)
    wrong = []
    for user, reach in REACH.items():
        answers = {
            "none": found(world, user),
            "dsn=*": found(world, user, {"dsn": "*"}),
            "ayla form": found(world, user, {"filter[dsn_like]": "%"}, f"{SEARCH}.json"),
            "desc": found(world, user, {"order": "desc"})[::-1],
            "limit=1 pages": [n for page in pages(world, user, {"limit": "1"}) for n in page],
            "date range": found(world, user, {"reserved_after": day(-325)}),
            "errors=failure": found(world, user, {"errors": "failure"}),
            "model=AY001MTP1": found(world, user, {"model": "AY001MTP1"}),
        }
        expected = {
            "errors=failure": [n for n in reach if n in (2, 3)],
            "model=AY001MTP1": [n for n in reach if n in (1, 2, 3, 4, 6)],
        }
        for name, got in answers.items():
            if got != expected.get(name, reach):
                wrong.append(f"{user} {name}: expected {expected.get(name, reach)}, got {got}")
        for n in ALL:
            if n in reach:
                continue
            # Another OEM's device: named exactly, it is absent, and its detail is a 404.
            if found(world, user, {"dsn": D[n]}) != []:
                wrong.append(f"{user} sees {D[n]} by dsn")
            detail = world.client.get(f"{V1}/devices/{D[n]}", headers=world.headers(user))
            jobs = world.client.get(f"{V1}/devices/{D[n]}/jobs", headers=world.headers(user))
            if (detail.status_code, jobs.status_code) != (404, 404):
                wrong.append(f"{user} {D[n]} detail/jobs: {detail.status_code}/{jobs.status_code}")
    assert wrong == [], "\n".join(wrong)


def test_filters_never_reach_past_the_wall(world: World, fleet: dict[str, int]) -> None:
    # Values that only other tenants' devices hold find nothing.
    check(
        world,
        "mm2",
        [
            ({"mac": "001122334401"}, []),
            ({"filter[mac_like]": "00112233*"}, [6]),
            ({"wifi_setup_key": "KEY*"}, [6]),
            ({"manuf_model": "WD101a"}, [6]),
            ({"status": "provisioned"}, []),
            ({"errors": "failure"}, []),
            ({"ads_connect_flag": "yes"}, [6]),
            ({"ads_connect_flag": "no"}, []),
        ],
    )
    check(
        world,
        "som2",
        [
            ({"oem_model": "gw"}, []),
            ({"dsn": "AC000W*"}, []),
            ({"filter[odm_like]": "*"}, []),
            ({"provisioned_after": day(-325)}, []),
        ],
    )
    check(
        world,
        "mom2",
        [({"oem_model": "lamp"}, []), ({"status": "provisioned"}, []), ({"manuf_sn": "SN-001"}, [])],
    )
    check(
        world,
        "mom",
        [
            ({"oem_model": "lamp"}, [1]),
            ({"status": "manufactured"}, []),  # 3 is provisionable by mom but not yet its own
            ({"hwsig": "hw-c"}, []),
            ({"provisioned_after": day(-325)}, [1]),
        ],
    )
    check(
        world,
        "som",
        [
            ({"status": "reserved"}, [8]),
            ({"model": "AY001RTA"}, [7, 8]),  # not 9, which products reserved
            ({"provisioned_before": day(39)}, [7]),
        ],
    )
