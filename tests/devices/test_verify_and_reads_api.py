"""Verify (the module proves it holds its DSN's key), device detail, jobs, and factory
actions: the tenant wall on every read, and `.json` on every route."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from tests.api import (
    ACTIONS,
    FAILURES,
    WHITE_BOX,
    assert_error,
    assert_same_as_unknown,
    device,
    jobs,
    manufacture,
    ok,
    provision,
    reservation,
)
from tests.world import World

from devicefactory.config import Settings
from devicefactory.devices.dsn import format_dsn
from devicefactory.keys.crypto import encrypt_verify_token

V1 = "/devicefactory/v1/devices"
UNKNOWN_ACTION = 999_999
MANUFACTURE = {
    "model": "AY001MTP1",
    "mac": "1D:EE:6E:A2:06:AC",
    "hwsig": "hwsig_5NU41",
    "dom_at": "2016/11/24 10:34:23 UTC",
    "manuf_model": "mm",
    "module_sw_version": "1.0",
}
BLACK = {"model": "AY001MTP1", "oem_model": "Lamp", "oem_host_version": "2.0"}
DEVICE_KEYS = {
    "dsn",
    "model",
    "mac",
    "hwsig",
    "odm",
    "manuf_model",
    "manuf_sn",
    "module_sw_version",
    "oem_host_version",
    "wifi_setup_key",
    "ads_connect_flag",
    "dom_at",
    "oem",
    "oem_model",
    "status",
    "public_key",
    "reserved_by",
    "reserve_action_id",
    "reserved_at",
    "manufactured_at",
    "provisioned_at",
    "verified_at",
    "last_job_failed",
}
ISO = "%Y-%m-%dT%H:%M:%SZ"

Pool = Callable[[int], None]


# --- helpers ------------------------------------------------------------------------------


def reserve_one(world: World, user: str = "mm", model: str = "AY001MTP1") -> dict[str, str]:
    (device,) = reservation(world, user, model).devices
    return device


def token(public_key: str, message: str) -> str:
    return base64.b64encode(encrypt_verify_token(public_key, message.encode())).decode()


def timestamp(clock: Any, **delta: float) -> int:
    return int((clock.now + timedelta(**delta)).timestamp())


def verify(world: World, dsn: str, body: Any, user: str = "mm") -> httpx2.Response:
    return world.client.post(f"{V1}/{dsn}/verify", json=body, headers=world.headers(user))


def assert_read_only_if_visible(world: World, user: str, dsn: str, route: str, visible: bool) -> None:
    """GET the device (route "") or its jobs ("/jobs") as ``user``: 200 if visible, else
    exactly the 404 of an unknown DSN."""

    def get(d: str) -> httpx2.Response:
        return world.client.get(f"{V1}/{d}{route}", headers=world.headers(user))

    if visible:
        assert get(dsn).status_code == 200
    else:
        assert_same_as_unknown(get, dsn)


# --- verify -------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [0, -299, 299, -300, 300])
def test_a_valid_token_verifies_the_device(world: World, pool: Pool, clock: Any, skew: int) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    response = verify(
        world, dsn, {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock, seconds=skew)}")}
    )
    assert response.status_code == 200, response.text
    body = response.json()["device"]
    assert set(body) == DEVICE_KEYS
    assert body["dsn"] == dsn
    assert body["ads_connect_flag"] is True
    assert body["verified_at"] == clock.now.strftime(ISO)
    stored = device(world, dsn)
    assert stored["ads_connect_flag"] is True
    assert stored["verified_at"] == clock.now.strftime(ISO)
    assert stored["status"] == "reserved"
    assert jobs(world, dsn) == [("reserve", "success", None), ("verify", "success", None)]


def test_verify_works_after_manufacture_and_json_suffix(world: World, pool: Pool, clock: Any) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    ok(manufacture(world, dsn, MANUFACTURE))
    response = world.client.post(
        f"{V1}/{dsn}/verify.json",
        json={"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock)}")},
        headers=world.headers("mm"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["device"]["ads_connect_flag"] is True
    assert response.json()["device"]["status"] == "manufactured"


@pytest.mark.parametrize(
    ("reserver", "user"), [("mm", "mm_admin"), ("mm", "ayla"), ("som", "som"), ("som", "gateway_admin")]
)
def test_verify_by_each_role_that_reaches_the_device(
    world: World, pool: Pool, clock: Any, reserver: str, user: str
) -> None:
    pool(1)
    reserved = reserve_one(world, reserver, "AY001RTA" if reserver == "som" else "AY001MTP1")
    dsn = reserved["dsn"]
    response = verify(world, dsn, {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock)}")}, user)
    assert response.status_code == 200, response.text
    assert device(world, dsn)["ads_connect_flag"] is True


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86400])
def test_a_token_outside_five_minutes_is_afs_600(world: World, pool: Pool, clock: Any, skew: int) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    body = {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock, seconds=skew)}")}
    message = assert_error(verify(world, dsn, body), 422, "AFS-600")
    assert message.startswith(FAILURES)
    stored = device(world, dsn)
    assert (stored["ads_connect_flag"], stored["verified_at"]) == (None, None)
    assert jobs(world, dsn)[-1] == ("verify", "failure", "AFS-600")


def test_an_old_token_is_refused_after_the_clock_moves_on(world: World, pool: Pool, clock: Any) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    body = {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock)}")}
    clock.advance(minutes=6)
    assert_error(verify(world, dsn, body), 422, "AFS-600")
    assert device(world, dsn)["verified_at"] is None


def test_a_token_for_another_dsn_is_afs_600(world: World, pool: Pool, clock: Any) -> None:
    pool(2)
    first, second = reservation(world, "mm", "AY001MTP1", 2).devices
    now = timestamp(clock)
    # Encrypted with this device's key, but naming the other DSN.
    body = {"token": token(first["public_key"], f"{second['dsn']}:{now}")}
    message = assert_error(verify(world, first["dsn"], body), 422, "AFS-600")
    assert message.startswith(FAILURES)
    # Naming this DSN, but encrypted with the other device's key.
    body = {"token": token(second["public_key"], f"{first['dsn']}:{now}")}
    assert_error(verify(world, first["dsn"], body), 422, "AFS-600")
    assert device(world, first["dsn"])["ads_connect_flag"] is None
    assert device(world, second["dsn"])["ads_connect_flag"] is None
    assert jobs(world, first["dsn"])[-2:] == [
        ("verify", "failure", "AFS-600"),
        ("verify", "failure", "AFS-600"),
    ]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda dsn, now: "!!! not base64 !!!", id="not-base64"),
        pytest.param(lambda dsn, now: base64.b64encode(b"\x00" * 256).decode(), id="zeros"),
        pytest.param(lambda dsn, now: base64.b64encode(f"{dsn}:{now}".encode()).decode(), id="plaintext"),
        pytest.param(lambda dsn, now: "QUJD", id="short"),
        pytest.param(lambda dsn, now: 12345, id="number"),
        pytest.param(lambda dsn, now: True, id="boolean"),
        pytest.param(lambda dsn, now: ["QUJD"], id="list"),
        pytest.param(lambda dsn, now: {"t": "QUJD"}, id="object"),
    ],
)
def test_a_garbage_token_is_afs_600(
    world: World, pool: Pool, clock: Any, make: Callable[[str, int], object]
) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    assert_error(verify(world, dsn, {"token": make(dsn, timestamp(clock))}), 422, "AFS-600")
    assert device(world, dsn)["ads_connect_flag"] is None
    assert jobs(world, dsn)[-1] == ("verify", "failure", "AFS-600")


@pytest.mark.parametrize(
    "message", ["{dsn}", "{dsn}:", "{dsn}:abc", "{dsn}:{now}.5", ":{now}", "{now}", "{dsn};{now}"]
)
def test_a_token_with_a_bad_message_is_afs_600(world: World, pool: Pool, clock: Any, message: str) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    text = message.format(dsn=dsn, now=timestamp(clock))
    assert_error(verify(world, dsn, {"token": token(reserved["public_key"], text)}), 422, "AFS-600")
    assert device(world, dsn)["verified_at"] is None


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": None}, {"tok": "x"}])
def test_a_missing_token_is_afs_607(world: World, pool: Pool, body: dict[str, Any]) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    assert_error(verify(world, dsn, body), 422, "AFS-607", "There are some missing required attrs: token")
    assert jobs(world, dsn)[-1] == ("verify", "failure", "AFS-607")


@pytest.mark.parametrize("user", ["mm2", "som", "som2", "mom", "mom2", "product_admin", "gateway_admin"])
def test_verify_on_an_unreachable_device_reads_as_unknown(
    world: World, pool: Pool, clock: Any, user: str
) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    body = {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock)}")}
    assert_same_as_unknown(lambda d: verify(world, d, body, user), dsn)
    assert_same_as_unknown(lambda d: verify(world, d, {}, user), dsn)
    assert device(world, dsn)["ads_connect_flag"] is None
    assert jobs(world, dsn) == [("reserve", "success", None)]


@pytest.mark.parametrize("user", ["som2", "mom", "mm"])
def test_verify_on_another_oems_white_box_reads_as_unknown(
    world: World, pool: Pool, clock: Any, user: str
) -> None:
    pool(1)
    reserved = reserve_one(world, "som", "AY001RTA")
    dsn = reserved["dsn"]
    body = {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock)}")}
    assert_same_as_unknown(lambda d: verify(world, d, body, user), dsn)
    assert jobs(world, dsn) == [("reserve", "success", None)]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "auth_token nope"}])
def test_verify_without_a_valid_token_is_401(
    world: World, pool: Pool, clock: Any, headers: dict[str, str]
) -> None:
    pool(1)
    reserved = reserve_one(world)
    dsn = reserved["dsn"]
    body = {"token": token(reserved["public_key"], f"{dsn}:{timestamp(clock)}")}
    assert_error(world.client.post(f"{V1}/{dsn}/verify", json=body, headers=headers), 401, "AFS-401")
    assert device(world, dsn)["ads_connect_flag"] is None


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"token"', b"null", b""])
def test_verify_malformed_json_is_afs_600(world: World, pool: Pool, raw: bytes) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    response = world.client.post(
        f"{V1}/{dsn}/verify", content=raw, headers={**world.headers("mm"), "Content-Type": "application/json"}
    )
    assert_error(response, 422, "AFS-600")


# --- device detail and jobs ---------------------------------------------------------------


def test_device_detail_has_every_field_and_never_the_private_key(
    world: World, pool: Pool, clock: Any
) -> None:
    pool(1)
    reserved = reserve_one(world)
    response = world.client.get(f"{V1}/{reserved['dsn']}", headers=world.headers("mm"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["device"]
    assert set(body["device"]) == DEVICE_KEYS
    assert body["device"]["public_key"] == reserved["public_key"]
    assert body["device"]["status"] == "reserved"
    assert body["device"]["reserved_at"] == clock.now.strftime(ISO)
    assert "PRIVATE" not in response.text


def test_jobs_list_the_history_oldest_first(world: World, pool: Pool, clock: Any) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    clock.advance(minutes=1)
    bad = world.client.post(f"{V1}/{dsn}/manufacture", json={}, headers=world.headers("mm"))
    assert bad.status_code == 422
    clock.advance(minutes=1)
    ok(manufacture(world, dsn, MANUFACTURE))
    response = world.client.get(f"{V1}/{dsn}/jobs", headers=world.headers("mm"))
    assert response.status_code == 200, response.text
    listed = response.json()["jobs"]
    assert [set(j) for j in listed] == [
        {"id", "dsn", "action_id", "operation", "result", "error_code", "message", "created_by", "created_at"}
    ] * 3
    assert [(j["operation"], j["result"], j["error_code"]) for j in listed] == [
        ("reserve", "success", None),
        ("manufacture", "failure", "AFS-607"),
        ("manufacture", "success", None),
    ]
    assert listed[1]["message"] == "There are some missing required attrs: model, mac, hwsig, dom_at"
    assert [j["created_by"] for j in listed] == [world.emails["mm"]] * 3
    assert [j["id"] for j in listed] == sorted(j["id"] for j in listed)
    assert listed[0]["created_at"] < listed[1]["created_at"] < listed[2]["created_at"]
    assert all(j["dsn"] == dsn for j in listed)


@pytest.mark.parametrize("route", ["", "/jobs"])
@pytest.mark.parametrize(
    ("user", "visible"),
    [
        ("ayla", True),
        ("mm", True),
        ("mm_admin", True),
        ("mm2", False),
        ("mom", False),
        ("mom2", False),
        ("product_admin", False),
        ("som", False),
        ("som2", False),
        ("gateway_admin", False),
    ],
)
def test_reads_of_a_reserved_black_box(
    world: World, pool: Pool, route: str, user: str, visible: bool
) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    assert_read_only_if_visible(world, user, dsn, route, visible)


@pytest.mark.parametrize("route", ["", "/jobs"])
@pytest.mark.parametrize(
    ("user", "visible"),
    [
        ("ayla", True),
        ("mm", True),
        ("mm_admin", True),
        ("mom", True),
        ("product_admin", True),
        ("mm2", False),
        ("mom2", False),
        ("som", False),
        ("gateway_admin", False),
    ],
)
def test_reads_of_a_provisioned_black_box(
    world: World, pool: Pool, route: str, user: str, visible: bool
) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    ok(manufacture(world, dsn, MANUFACTURE))
    ok(provision(world, dsn, BLACK, "mom"))
    assert_read_only_if_visible(world, user, dsn, route, visible)


@pytest.mark.parametrize("route", ["", "/jobs"])
@pytest.mark.parametrize(
    ("user", "visible"),
    [
        ("ayla", True),
        ("som", True),
        ("gateway_admin", True),
        ("som2", False),
        ("mm", False),
        ("mom", False),
        ("product_admin", False),
    ],
)
def test_reads_of_a_white_box(world: World, pool: Pool, route: str, user: str, visible: bool) -> None:
    pool(1)
    dsn = reserve_one(world, "som", "AY001RTA")["dsn"]
    ok(provision(world, dsn, WHITE_BOX, "som"))
    assert_read_only_if_visible(world, user, dsn, route, visible)


def test_the_404_body_is_identical_before_and_after_the_device_exists(
    world: World, pool: Pool, settings: Settings
) -> None:
    pool(1)
    dsn = format_dsn(settings.dsn_prefix, 1)
    routes = [
        ("get", f"{V1}/{dsn}"),
        ("get", f"{V1}/{dsn}/jobs"),
        ("post", f"{V1}/{dsn}/manufacture"),
        ("post", f"{V1}/{dsn}/verify"),
    ]

    def call(method: str, url: str) -> httpx2.Response:
        if method == "get":
            return world.client.get(url, headers=world.headers("mm2"))
        return world.client.post(url, json=MANUFACTURE, headers=world.headers("mm2"))

    before = [call(method, url) for method, url in routes]
    assert [r.status_code for r in before] == [404] * len(routes)
    assert reserve_one(world)["dsn"] == dsn
    after = [call(method, url) for method, url in routes]
    assert [r.status_code for r in after] == [404] * len(routes)
    assert [r.json() for r in after] == [r.json() for r in before]
    assert jobs(world, dsn) == [("reserve", "success", None)]


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_reads_accept_the_json_suffix(world: World, pool: Pool, suffix: str) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    detail = world.client.get(f"{V1}/{dsn}{suffix}", headers=world.headers("mm"))
    assert detail.status_code == 200, detail.text
    assert detail.json()["device"]["dsn"] == dsn
    history = world.client.get(f"{V1}/{dsn}/jobs{suffix}", headers=world.headers("mm"))
    assert history.status_code == 200, history.text
    assert history.json()["jobs"][0]["operation"] == "reserve"
    assert_same_as_unknown(lambda d: world.client.get(f"{V1}/{d}{suffix}", headers=world.headers("mm2")), dsn)


@pytest.mark.parametrize("route", ["", "/jobs"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "auth_token nope"}, {"Authorization": "nope"}])
def test_reads_without_a_valid_token_are_401(
    world: World, pool: Pool, route: str, headers: dict[str, str]
) -> None:
    pool(1)
    dsn = reserve_one(world)["dsn"]
    assert_error(world.client.get(f"{V1}/{dsn}{route}", headers=headers), 401, "AFS-401")


# --- factory actions ----------------------------------------------------------------------


@pytest.mark.parametrize("user", ["mm", "mm_admin", "ayla"])
def test_the_reserve_action_is_readable_by_its_oem(world: World, pool: Pool, user: str) -> None:
    pool(2)
    action_id, devices = reservation(world, "mm", "AY001MTP1", 2)
    for suffix in ("", ".json"):
        response = world.client.get(f"{ACTIONS}/{action_id}{suffix}", headers=world.headers(user))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["factory_action"]["id"] == action_id
        assert body["factory_action"]["type"] == "reserve"
        assert body["factory_action"]["count"] == 2
        assert body["factory_action"]["oem_id"] == world.oem_ids["modules"]
        assert [d["dsn"] for d in body["devices"]] == [d["dsn"] for d in devices]
    for kind in ("csv", "log", "xml"):
        for suffix in ("", ".json"):
            response = world.client.get(
                f"{ACTIONS}/{action_id}/files/{kind}{suffix}", headers=world.headers(user)
            )
            assert response.status_code == 200, (kind, suffix, response.text)
            assert response.content


@pytest.mark.parametrize("user", ["mm2", "mom", "mom2", "product_admin", "som", "som2", "gateway_admin"])
def test_another_oems_action_reads_as_unknown(world: World, pool: Pool, user: str) -> None:
    pool(1)
    action_id = reservation(world, "mm", "AY001MTP1").action_id
    unknown = str(UNKNOWN_ACTION)
    for path in ("", ".json", "/files/csv", "/files/log", "/files/xml", "/files/csv.json"):
        assert_same_as_unknown(
            lambda a, path=path: world.client.get(f"{ACTIONS}/{a}{path}", headers=world.headers(user)),
            str(action_id),
            unknown,
        )


def test_a_white_box_action_is_hidden_from_other_oems(world: World, pool: Pool) -> None:
    pool(1)
    action_id = reservation(world, "som", "AY001RTA").action_id
    assert (
        world.client.get(f"{ACTIONS}/{action_id}", headers=world.headers("gateway_admin")).status_code == 200
    )
    for user in ("som2", "mm", "product_admin"):
        for path in ("", "/files/csv", "/files/log", "/files/xml"):
            assert_same_as_unknown(
                lambda a, path=path, user=user: world.client.get(
                    f"{ACTIONS}/{a}{path}", headers=world.headers(user)
                ),
                str(action_id),
                str(UNKNOWN_ACTION),
            )


@pytest.mark.parametrize("path", ["", "/files/csv", "/files/log", "/files/xml"])
def test_actions_without_a_valid_token_are_401(world: World, pool: Pool, path: str) -> None:
    pool(1)
    action_id = reservation(world, "mm", "AY001MTP1").action_id
    assert_error(world.client.get(f"{ACTIONS}/{action_id}{path}"), 401, "AFS-401")


@pytest.mark.parametrize(
    "dsn",
    [
        pytest.param("AC000W%00", id="nul"),
        pytest.param("AC000W" + "9" * 200, id="long"),
        pytest.param("%C3%A9%E2%80%AE", id="unicode"),
        pytest.param("AC000W000000001%27%20OR%20%271%27%3D%271", id="quote"),
    ],
)
@pytest.mark.parametrize("user", ["mm", "ayla"])
def test_odd_dsns_are_unknown_not_errors(world: World, pool: Pool, dsn: str, user: str) -> None:
    pool(1)
    reserve_one(world)
    headers = world.headers(user)
    for response in (
        world.client.get(f"{V1}/{dsn}", headers=headers),
        world.client.get(f"{V1}/{dsn}/jobs", headers=headers),
        world.client.post(f"{V1}/{dsn}/manufacture", json=MANUFACTURE, headers=headers),
        world.client.post(f"{V1}/{dsn}/verify", json={"token": "QUJD"}, headers=headers),
    ):
        assert_error(response, 404, "AFS-404")
    response = world.client.post(f"{V1}/{dsn}/provision", json=BLACK, headers=world.headers("ayla"))
    assert_error(response, 404, "AFS-404")
