"""Factory actions behind the tenant wall, and the action list's filters and pages (§6).

An OEM's reserve and upload actions, their files, the devices they made and those
devices' jobs are invisible to every other OEM: each reads exactly like something that
does not exist (404), and the other OEM's action list never holds them. Ayla::Admin
sees everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from tests.api import ACTIONS, UNKNOWN_DSN, advance, log_line, reservation, upload
from tests.conftest import FrozenClock, day
from tests.world import World

V1 = "/devicefactory/v1"
FILE_KINDS = ("csv", "log", "xml", "failed")
OTHER_OEMS = ["mm2", "mom", "product_admin", "mom2", "som", "gateway_admin", "som2"]

Pool = Callable[[int], None]
Run = Callable[[], int]


def listed(world: World, user: str, params: dict[str, str] | None = None) -> list[int]:
    response = world.client.get(ACTIONS, params=params, headers=world.headers(user))
    assert response.status_code == 200, f"{params}: {response.text}"
    return [int(action["id"]) for action in response.json()["factory_actions"]]


def assert_not_found_like_unknown(
    response: httpx2.Response, unknown: httpx2.Response, real: str, fake: str
) -> None:
    """The same 404 as for something that does not exist, up to the id named in the message."""
    assert response.status_code == 404, response.text
    assert unknown.status_code == 404, unknown.text
    expected = unknown.json()
    assert [entry["code"] for entry in expected["error"]] == ["AFS-404"]
    for entry in expected["error"]:
        entry["message"] = entry["message"].replace(fake, real)
    assert response.json() == expected


# --- the tenant wall ------------------------------------------------------------------------------


@pytest.fixture
def oem_a(world: World, pool: Pool, run_actions: Run) -> dict[str, Any]:
    """OEM modules: a reserve of two DSNs, and an upload that manufactured the first.
    OEM gateways: a reserve of its own."""
    pool(3)
    reserved = reservation(world, "mm", "AY001MTP1", 2)
    dsns = reserved.dsns
    upload_id = upload(world, "mm", [log_line(dsns[0], "000000000001", "sig-1")])["id"]
    assert run_actions() == 1
    other_id = reservation(world, "som", "AY001RTA").action_id
    return {"reserve": reserved.action_id, "upload": upload_id, "dsns": dsns, "other": other_id}


def test_other_oems_see_nothing_of_an_oems_actions_files_devices_and_jobs(
    world: World, oem_a: dict[str, Any]
) -> None:
    unknown_id = str(oem_a["other"] + 1000)
    for user in OTHER_OEMS:
        headers = world.headers(user)
        for name in ("reserve", "upload"):
            real = str(oem_a[name])
            assert_not_found_like_unknown(
                world.client.get(f"{ACTIONS}/{real}", headers=headers),
                world.client.get(f"{ACTIONS}/{unknown_id}", headers=headers),
                real,
                unknown_id,
            )
            for kind in FILE_KINDS:
                assert_not_found_like_unknown(
                    world.client.get(f"{ACTIONS}/{real}/files/{kind}", headers=headers),
                    world.client.get(f"{ACTIONS}/{unknown_id}/files/{kind}", headers=headers),
                    real,
                    unknown_id,
                )
        for dsn in oem_a["dsns"]:
            for suffix in ("", "/jobs"):
                assert_not_found_like_unknown(
                    world.client.get(f"{V1}/devices/{dsn}{suffix}", headers=headers),
                    world.client.get(f"{V1}/devices/{UNKNOWN_DSN}{suffix}", headers=headers),
                    dsn,
                    UNKNOWN_DSN,
                )
        listing = listed(world, user)
        assert oem_a["reserve"] not in listing, user
        assert oem_a["upload"] not in listing, user
        assert listing == ([oem_a["other"]] if user in ("som", "gateway_admin") else []), user
        for params in ({"type": "reserve"}, {"type": "manufacture"}, {"created_by": "mm@example.com"}):
            assert oem_a["reserve"] not in listed(world, user, params), (user, params)
            assert oem_a["upload"] not in listed(world, user, params), (user, params)
        found = world.client.get(f"{V1}/devices", params={"dsn": "*"}, headers=headers).json()["devices"]
        assert not {d["dsn"] for d in found} & set(oem_a["dsns"]), user


def test_the_oems_own_admin_sees_its_actions(world: World, oem_a: dict[str, Any]) -> None:
    for user in ("mm", "mm_admin"):
        assert listed(world, user) == [oem_a["upload"], oem_a["reserve"]]
        for name, kinds in (("reserve", ("csv", "log", "xml")), ("upload", ("csv", "log", "failed"))):
            assert (
                world.client.get(f"{ACTIONS}/{oem_a[name]}", headers=world.headers(user)).status_code == 200
            )
            for kind in kinds:
                response = world.client.get(
                    f"{ACTIONS}/{oem_a[name]}/files/{kind}", headers=world.headers(user)
                )
                assert response.status_code == 200, (user, name, kind, response.text)
    # The other OEM's action reads as unknown to OEM modules too.
    assert (
        world.client.get(f"{ACTIONS}/{oem_a['other']}", headers=world.headers("mm_admin")).status_code == 404
    )


def test_ayla_admin_sees_every_oems_actions_and_files(
    world: World, oem_a: dict[str, Any], clock: FrozenClock
) -> None:
    headers = world.headers("ayla")
    assert listed(world, "ayla") == [oem_a["other"], oem_a["upload"], oem_a["reserve"]]
    a, b = oem_a["dsns"]

    detail = world.client.get(f"{ACTIONS}/{oem_a['reserve']}", headers=headers)
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert [d["dsn"] for d in body["devices"]] == [a, b]
    reserve_id = oem_a["reserve"]
    stamp = clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["factory_action"] == {
        "id": reserve_id,
        "type": "reserve",
        "status": "success",
        "count": 2,
        "oem_id": world.oem_ids["modules"],
        "model": "AY001MTP1",
        "created_by": "mm@example.com",
        "created_at": stamp,
        "started_at": stamp,
        "finished_at": stamp,
        "message": None,
        "upload": None,
        "progress": {
            "lines_total": 2,
            "lines_done": 2,
            "applied": 2,
            "identical": 0,
            "conflict": 0,
            "invalid": 0,
            "skipped": 0,
        },
        "files": {kind: f"{ACTIONS}/{reserve_id}/files/{kind}" for kind in ("csv", "log", "xml")},
    }
    csv = world.client.get(f"{ACTIONS}/{reserve_id}/files/csv", headers=headers)
    assert csv.status_code == 200
    assert csv.text == (
        "dsn,model,status,result,error_code\n"
        f"{a},AY001MTP1,manufactured,success,\n"
        f"{b},AY001MTP1,reserved,success,\n"
    )
    log = world.client.get(f"{ACTIONS}/{reserve_id}/files/log", headers=headers)
    assert log.text == "# summary: reserve of 2 AY001MTP1 devices: success\n"
    xml = world.client.get(f"{ACTIONS}/{reserve_id}/files/xml", headers=headers)
    assert xml.status_code == 200
    assert xml.headers["content-type"] == "application/pkcs7-mime"
    assert xml.content

    upload_id = oem_a["upload"]
    detail = world.client.get(f"{ACTIONS}/{upload_id}", headers=headers)
    assert detail.status_code == 200, detail.text
    action = detail.json()["factory_action"]
    assert [d["dsn"] for d in detail.json()["devices"]] == [a]
    assert (action["type"], action["status"], action["oem_id"], action["created_by"]) == (
        "manufacture",
        "success",
        world.oem_ids["modules"],
        "mm@example.com",
    )
    assert action["upload"]["type"] == "manufacture"
    assert action["upload"]["validate_only"] is False
    assert action["upload"]["file_name"] == "line.log"
    assert (action["progress"]["lines_total"], action["progress"]["applied"]) == (1, 1)
    for kind in ("csv", "log", "failed"):
        response = world.client.get(f"{ACTIONS}/{upload_id}/files/{kind}", headers=headers)
        assert response.status_code == 200, (kind, response.text)
    assert world.client.get(f"{ACTIONS}/{upload_id}/files/csv", headers=headers).text == (
        f"dsn,model,status,result,error_code\n{a},AY001MTP1,manufactured,applied,\n"
    )
    for dsn in (a, b):
        assert world.client.get(f"{V1}/devices/{dsn}", headers=headers).status_code == 200
    jobs = world.client.get(f"{V1}/devices/{a}/jobs", headers=headers).json()["jobs"]
    assert [(j["operation"], j["result"], j["action_id"]) for j in jobs] == [
        ("reserve", "success", reserve_id),
        ("manufacture", "success", upload_id),
    ]


# --- the action list: filters and pages ---------------------------------------------------------


@pytest.fixture
def history(world: World, pool: Pool, clock: FrozenClock, run_actions: Run) -> dict[str, int]:
    """Actions of OEM modules a day apart (a1-a6), interleaved with other OEMs' (b1, b2).

    a1 reserve  mm        11-22  success
    a2 reserve  mm_admin  11-23  success
    b1 reserve  mm2       11-24  (modules2)
    a3 upload   mm        11-24  manufacture, success
    a4 upload   mm        11-25  validate, success
    a5 upload   mm        11-26  manufacture, failure (bad mac)
    b2 reserve  som       11-26  (gateways)
    a6 upload   mm        11-27  manufacture, still pending
    """
    pool(4)
    clock.start_timeline()
    ids = {}
    a1 = reservation(world, "mm", "AY001MTP1")
    ids["a1"], (dsn1,) = a1.action_id, a1.dsns
    advance(world, clock, days=1)
    a2 = reservation(world, "mm_admin", "AY001MTP1")
    ids["a2"], (dsn2,) = a2.action_id, a2.dsns
    advance(world, clock, days=1)
    ids["b1"] = reservation(world, "mm2", "AY001MTP1").action_id
    ids["a3"] = upload(world, "mm", [log_line(dsn1, "000000000001", "sig-1")])["id"]
    advance(world, clock, days=1)
    ids["a4"] = upload(world, "mm", [log_line(dsn2, "000000000002", "sig-2")], validate=True)["id"]
    advance(world, clock, days=1)
    ids["a5"] = upload(world, "mm", [log_line(dsn2, "zz", "sig-2")])["id"]
    ids["b2"] = reservation(world, "som", "AY001RTA").action_id
    assert run_actions() == 3
    advance(world, clock, days=1)
    ids["a6"] = upload(world, "mm", [log_line(dsn2, "000000000002", "sig-2")])["id"]
    return ids


def test_action_list_filters(world: World, history: dict[str, int]) -> None:
    h = history
    cases: list[tuple[dict[str, str], list[str]]] = [
        ({}, ["a6", "a5", "a4", "a3", "a2", "a1"]),
        ({"type": "reserve"}, ["a2", "a1"]),
        ({"type": "manufacture"}, ["a6", "a5", "a3"]),
        ({"type": "validate"}, ["a4"]),
        ({"type": "provision"}, []),
        ({"status": "pending"}, ["a6"]),
        ({"status": "success"}, ["a4", "a3", "a2", "a1"]),
        ({"status": "failure"}, ["a5"]),
        ({"status": "running"}, []),
        ({"created_by": "mm_admin@example.com"}, ["a2"]),
        ({"created_by": "mm@example.com"}, ["a6", "a5", "a4", "a3", "a1"]),
        ({"created_by": "mm2@example.com"}, []),
        ({"created_by": "nobody@example.com"}, []),
        ({"from": f"{day(1)}T00:00:00Z"}, ["a6", "a5", "a4", "a3", "a2"]),
        ({"from": f"{day(2)}T12:00:00Z"}, ["a6", "a5", "a4"]),
        ({"to": f"{day(2)}T12:00:00Z"}, ["a3", "a2", "a1"]),
        ({"to": f"{day(0)}T08:00:00Z"}, []),
        ({"from": f"{day(1)}T12:00:00Z", "to": f"{day(3)}T12:00:00Z"}, ["a4", "a3"]),
        ({"from": f"{day(6)}T00:00:00Z"}, []),
        ({"from": f"{day(2)}T10:00:00+02:00", "to": f"{day(2)}T11:00:01+02:00"}, ["a3"]),
        ({"type": "manufacture", "status": "failure"}, ["a5"]),
        ({"type": "reserve", "created_by": "mm@example.com"}, ["a1"]),
        ({"type": "manufacture", "from": f"{day(3)}T00:00:00Z", "status": "pending"}, ["a6"]),
    ]
    wrong = []
    for params, names in cases:
        expected = [h[name] for name in names]
        for user in ("mm", "mm_admin"):
            got = listed(world, user, params)
            if got != expected:
                wrong.append(f"{user} {params}: expected {expected}, got {got}")
    # Ayla::Admin: every OEM's, with the same filters.
    for params, names in [
        ({}, ["a6", "b2", "a5", "a4", "a3", "b1", "a2", "a1"]),
        ({"type": "reserve"}, ["b2", "b1", "a2", "a1"]),
        ({"created_by": "mm2@example.com"}, ["b1"]),
        ({"from": f"{day(2)}T00:00:00Z", "to": f"{day(4)}T23:00:00Z", "type": "reserve"}, ["b2", "b1"]),
    ]:
        expected = [h[name] for name in names]
        if (got := listed(world, "ayla", params)) != expected:
            wrong.append(f"ayla {params}: expected {expected}, got {got}")
    # And the other OEMs only theirs.
    for user, names in [("mm2", ["b1"]), ("som", ["b2"]), ("gateway_admin", ["b2"]), ("mom", [])]:
        expected = [h[name] for name in names]
        if (got := listed(world, user)) != expected:
            wrong.append(f"{user}: expected {expected}, got {got}")
    assert wrong == [], "\n".join(wrong)


def test_action_list_date_only_bounds(world: World, history: dict[str, int]) -> None:
    """Dates in the ISO date form, as the search takes them."""
    h = history
    client = TestClient(world.client.app, raise_server_exceptions=False)
    response = client.get(ACTIONS, params={"from": day(1)}, headers=world.headers("mm"))
    assert response.status_code == 200, response.text
    assert [a["id"] for a in response.json()["factory_actions"]] == [
        h[n] for n in ("a6", "a5", "a4", "a3", "a2")
    ]
    response = client.get(ACTIONS, params={"to": day(1)}, headers=world.headers("mm"))
    assert response.status_code == 200, response.text
    assert [a["id"] for a in response.json()["factory_actions"]] == [h["a1"]]


def action_pages(world: World, user: str, params: dict[str, str]) -> list[list[int]]:
    """Follow next_cursor until null; the non-empty pages."""
    result: list[list[int]] = []
    cursor = None
    for _ in range(20):
        query = {**params, **({"cursor": str(cursor)} if cursor is not None else {})}
        response = world.client.get(ACTIONS, params=query, headers=world.headers(user))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"factory_actions", "next_cursor"}
        result.append([int(a["id"]) for a in body["factory_actions"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    else:
        pytest.fail("next_cursor never became null")
    while result and not result[-1]:
        result.pop()
    return result


def test_action_list_pages(world: World, history: dict[str, int]) -> None:
    h = history

    def named(*groups: tuple[str, ...]) -> list[list[int]]:
        return [[h[name] for name in group] for group in groups]

    assert action_pages(world, "mm", {"limit": "2"}) == named(("a6", "a5"), ("a4", "a3"), ("a2", "a1"))
    assert action_pages(world, "mm", {"limit": "4"}) == named(("a6", "a5", "a4", "a3"), ("a2", "a1"))
    assert action_pages(world, "mm", {"limit": "1", "type": "manufacture"}) == named(
        ("a6",), ("a5",), ("a3",)
    )
    assert action_pages(world, "mm", {"limit": "2", "type": "manufacture"}) == named(("a6", "a5"), ("a3",))
    assert action_pages(world, "ayla", {"limit": "3"}) == named(
        ("a6", "b2", "a5"), ("a4", "a3", "b1"), ("a2", "a1")
    )
    assert action_pages(world, "mm2", {"limit": "1"}) == named(("b1",))
    # A short page has no next page.
    body = world.client.get(ACTIONS, params={"limit": "50"}, headers=world.headers("mm")).json()
    assert len(body["factory_actions"]) == 6
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"type": "bogus"},
        {"status": "bogus"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "abc"},
        {"from": "garbage"},
        {"to": "2026-13-01T00:00:00Z"},
        {"cursor": "abc"},
    ],
)
def test_action_list_bad_parameters(world: World, params: dict[str, str]) -> None:
    client = TestClient(world.client.app, raise_server_exceptions=False)
    response = client.get(ACTIONS, params=params, headers=world.headers("mm"))
    assert response.status_code == 422, response.text
    assert [entry["code"] for entry in response.json()["error"]] == ["AFS-600"]


@pytest.mark.parametrize(
    "action_id", ["0", "-1", "999999", "2147483648", "3000000000", "99999999999999999999999"]
)
def test_any_unknown_action_id_is_a_plain_404(world: World, oem_a: dict[str, Any], action_id: str) -> None:
    """Whatever the number, an id that names no visible action is the same 404, never a 500."""
    client = TestClient(world.client.app, raise_server_exceptions=False)
    for user in ("mm", "som2", "ayla"):
        for suffix in ("", *(f"/files/{kind}" for kind in FILE_KINDS)):
            response = client.get(f"{ACTIONS}/{action_id}{suffix}", headers=world.headers(user))
            assert response.status_code == 404, (user, suffix, response.text)
            assert response.json() == {
                "error": [{"code": "AFS-404", "message": f"Factory action {action_id} not found"}]
            }
    # The same number as a list cursor is a bad or an empty page, never a server error.
    response = client.get(ACTIONS, params={"cursor": action_id}, headers=world.headers("mm"))
    assert response.status_code in (200, 422), response.text
