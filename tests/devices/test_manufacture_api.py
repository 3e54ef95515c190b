"""POST /devicefactory/v1/devices/:dsn/manufacture against the AFS 2.2 contract (§4).

Roles, the tenant wall (another OEM's DSN reads exactly like an unknown one), the
error order 607 -> 601 -> 606 -> 608 -> 600, the field rules, and the job every call
on a reachable device leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from tests.api import (
    FAILURES,
    assert_error,
    assert_failures,
    assert_same_as_unknown,
    device,
    jobs,
    last_job,
    manufacture,
    ok,
    provision,
    reserve,
)
from tests.world import World

from devicefactory.config import Settings
from devicefactory.devices import queries
from devicefactory.devices.dsn import format_dsn

V1 = "/devicefactory/v1/devices"
MANUFACTURE = {
    "model": "AY001MTP1",
    "mac": "1D:EE:6E:A2:06:AC",
    "hwsig": "hwsig_5NU41",
    "dom_at": "2016/11/24 10:34:23 UTC",
}
OPTIONAL = {
    "manuf_model": "mfg_model_HdsbL",
    "manuf_sn": "SN-0001",
    "odm": "odm_A",
    "module_sw_version": "sw 1.2.3",
    "wifi_setup_key": "wsk_1",
}
# What a product maker sends to provision a module manufactured with MANUFACTURE.
PROVISION = {
    "model": "AY001MTP1",
    "oem_model": "Lamp",
    "oem_host_version": "1.0",
    "manuf_model": "m",
    "module_sw_version": "1",
}
FORBIDDEN = ["mom", "product_admin", "mom2", "som", "gateway_admin", "som2"]

Pool = Callable[[int], None]


# --- helpers ------------------------------------------------------------------------------


def assert_reads_as_unknown(world: World, user: str, dsn: str, body: Any) -> None:
    """404 with exactly the body an unknown DSN gets (with its DSN in place of this one)."""
    hidden, unknown = assert_same_as_unknown(lambda d: manufacture(world, d, body, user), dsn)
    assert hidden.headers.get("content-type") == unknown.headers.get("content-type")


# --- success ------------------------------------------------------------------------------


def test_manufacture_records_the_factory_data(world: World, pool: Pool, clock: Any) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(world, dsn, {**MANUFACTURE, **OPTIONAL, "ads_connect_flag": True})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "device": {
            "dsn": dsn,
            "model": "AY001MTP1",
            "mac": "1dee6ea206ac",
            "hwsig": "hwsig_5NU41",
            "odm": "odm_A",
            "manuf_model": "mfg_model_HdsbL",
            "manuf_sn": "SN-0001",
            "module_sw_version": "sw 1.2.3",
            "oem_host_version": None,
            "wifi_setup_key": "wsk_1",
            "ads_connect_flag": True,
            "dom_at": "2016-11-24T10:34:23Z",
        }
    }
    stored = device(world, dsn)
    assert stored["status"] == "manufactured"
    assert stored["manufactured_at"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stored["oem"] is None
    assert stored["reserved_by"] == world.oem_ids["modules"]
    assert jobs(world, dsn) == [("reserve", "success", None), ("manufacture", "success", None)]


def test_only_required_fields_leave_the_optional_ones_empty(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(world, dsn, MANUFACTURE)
    assert response.status_code == 200, response.text
    body = response.json()["device"]
    for name in ("odm", "manuf_model", "manuf_sn", "module_sw_version", "wifi_setup_key", "ads_connect_flag"):
        assert body[name] is None


def test_empty_or_null_optional_fields_count_as_missing(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(
        world, dsn, {**MANUFACTURE, "manuf_model": "", "odm": None, "ads_connect_flag": "", "manuf_sn": None}
    )
    assert response.status_code == 200, response.text
    body = response.json()["device"]
    assert (body["manuf_model"], body["odm"], body["ads_connect_flag"], body["manuf_sn"]) == (
        None,
        None,
        None,
        None,
    )


def test_unknown_body_keys_are_ignored(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(
        world,
        dsn,
        {
            **MANUFACTURE,
            "colour": "blue",
            "status": "provisioned",
            "oem_model": "Sneaky",
            "oem_host_version": "9",
            "oem": world.oem_ids["products"],
            "dsn": "AC000W000000999",
        },
    )
    assert response.status_code == 200, response.text
    stored = device(world, dsn)
    assert stored["dsn"] == dsn
    assert stored["status"] == "manufactured"
    assert stored["oem_model"] is None
    assert stored["oem_host_version"] is None
    assert stored["oem"] is None


def test_json_suffix_is_accepted(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = world.client.post(
        f"{V1}/{dsn}/manufacture.json", json=MANUFACTURE, headers=world.headers("mm")
    )
    assert response.status_code == 200, response.text
    assert response.json()["device"]["dsn"] == dsn


@pytest.mark.parametrize(
    "mac", ["1D:EE:6E:A2:06:AC", "1d-ee-6e-a2-06-ac", "1DEE6EA206AC", "1dee6ea206ac", "1DEE-6EA2-06AC"]
)
def test_mac_separators_are_accepted_and_returned_as_12_lowercase_hex(
    world: World, pool: Pool, mac: str
) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(world, dsn, {**MANUFACTURE, "mac": mac})
    assert response.status_code == 200, response.text
    assert response.json()["device"]["mac"] == "1dee6ea206ac"
    assert device(world, dsn)["mac"] == "1dee6ea206ac"


@pytest.mark.parametrize(
    ("dom_at", "iso"),
    [
        ("2016/11/24 10:34:23 UTC", "2016-11-24T10:34:23Z"),
        ("2016/11/24 10:34:23 GMT", "2016-11-24T10:34:23Z"),
        ("2014/06/02 16:21:10 UTC", "2014-06-02T16:21:10Z"),
        ("2016/02/29 23:59:59 UTC", "2016-02-29T23:59:59Z"),
    ],
)
def test_dom_at_is_returned_as_iso(world: World, pool: Pool, dom_at: str, iso: str) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(world, dsn, {**MANUFACTURE, "dom_at": dom_at})
    assert response.status_code == 200, response.text
    assert response.json()["device"]["dom_at"] == iso
    assert device(world, dsn)["dom_at"] == iso


@pytest.mark.parametrize(
    ("flag", "expected"),
    [(True, True), (False, False), (1, True), (0, False), ("true", True), ("false", False)],
)
def test_ads_connect_flag_values(world: World, pool: Pool, flag: object, expected: bool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = manufacture(world, dsn, {**MANUFACTURE, "ads_connect_flag": flag})
    assert response.status_code == 200, response.text
    assert response.json()["device"]["ads_connect_flag"] is expected
    assert device(world, dsn)["ads_connect_flag"] is expected


@pytest.mark.parametrize("flag", ["yes", "no", 2, -1, "maybe", [True], {"on": True}])
def test_an_invalid_ads_connect_flag_is_afs_600(world: World, pool: Pool, flag: object) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert_failures(manufacture(world, dsn, {**MANUFACTURE, "ads_connect_flag": flag}), "ads_connect_flag")
    assert device(world, dsn)["status"] == "reserved"


def test_longest_allowed_values_are_accepted(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    long_fields = dict.fromkeys(OPTIONAL, "x" * 255)
    response = manufacture(world, dsn, {**MANUFACTURE, "hwsig": "h" * 128, **long_fields})
    assert response.status_code == 200, response.text
    body = response.json()["device"]
    assert body["hwsig"] == "h" * 128
    assert all(body[name] == "x" * 255 for name in OPTIONAL)


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["mm", "mm_admin", "ayla"])
def test_module_makers_and_ayla_manufacture(world: World, pool: Pool, user: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm")
    response = manufacture(world, dsn, MANUFACTURE, user)
    assert response.status_code == 200, response.text
    assert device(world, dsn)["status"] == "manufactured"
    assert jobs(world, dsn)[-1] == ("manufacture", "success", None)


def test_ayla_manufactures_a_platform_device(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "ayla")
    response = manufacture(world, dsn, MANUFACTURE, "ayla")
    assert response.status_code == 200, response.text
    # A platform device is no OEM's to manufacture.
    assert_reads_as_unknown(world, "mm", dsn, {**MANUFACTURE, "mac": "aabbccddeeff", "hwsig": "other"})


@pytest.mark.parametrize("user", FORBIDDEN)
def test_other_roles_may_not_manufacture(world: World, pool: Pool, user: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm")
    assert_error(manufacture(world, dsn, MANUFACTURE, user), 403, "AFS-403")
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn) == [("reserve", "success", None)]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "auth_token nope"}, {"Authorization": "Bearer"}, {"Authorization": "x y"}],
)
def test_manufacture_without_a_valid_token_is_401(world: World, pool: Pool, headers: dict[str, str]) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = world.client.post(f"{V1}/{dsn}/manufacture", json=MANUFACTURE, headers=headers)
    assert_error(response, 401, "AFS-401")
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn) == [("reserve", "success", None)]


# --- the tenant wall ----------------------------------------------------------------------


@pytest.mark.parametrize("user", ["mm2"])
def test_another_oems_dsn_reads_exactly_like_an_unknown_one(world: World, pool: Pool, user: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm")
    assert_reads_as_unknown(world, user, dsn, MANUFACTURE)
    # Also for bodies that would fail: nothing about the device leaks.
    assert_reads_as_unknown(world, user, dsn, {})
    assert_reads_as_unknown(world, user, dsn, {**MANUFACTURE, "model": "XYZ"})
    assert device(world, dsn)["status"] == "reserved"
    # Refusals on a device the caller cannot reach leave no job.
    assert jobs(world, dsn) == [("reserve", "success", None)]


def test_the_404_body_is_identical_before_and_after_another_oem_reserves_the_dsn(
    world: World, pool: Pool, settings: Settings
) -> None:
    pool(1)
    dsn = format_dsn(settings.dsn_prefix, 1)
    before = manufacture(world, dsn, MANUFACTURE, "mm2")
    assert_error(before, 404, "AFS-404")
    assert reserve(world, "mm") == [dsn]
    after = manufacture(world, dsn, MANUFACTURE, "mm2")
    assert after.status_code == 404
    assert after.json() == before.json()


def test_a_device_reserved_by_another_module_maker_is_not_reachable_even_for_its_admin(
    world: World, pool: Pool
) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm2")
    for user in ("mm", "mm_admin"):
        assert_reads_as_unknown(world, user, dsn, MANUFACTURE)
    assert jobs(world, dsn) == [("reserve", "success", None)]


# --- malformed bodies ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{", b'{"model": "AY001MTP1",}', b"[]", b'"x"', b"null", b"", b"1"])
def test_malformed_json_or_not_an_object_is_afs_600(world: World, pool: Pool, raw: bytes) -> None:
    pool(1)
    (dsn,) = reserve(world)
    response = world.client.post(
        f"{V1}/{dsn}/manufacture",
        content=raw,
        headers={**world.headers("mm"), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "AFS-600")
    assert device(world, dsn)["status"] == "reserved"


# --- AFS-607 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        (("model", "mac", "hwsig", "dom_at"), "model, mac, hwsig, dom_at"),
        (("model",), "model"),
        (("mac",), "mac"),
        (("hwsig",), "hwsig"),
        (("dom_at",), "dom_at"),
        (("dom_at", "mac"), "mac, dom_at"),
        (("hwsig", "model"), "model, hwsig"),
    ],
)
@pytest.mark.parametrize("how", ["absent", "empty", "null"])
def test_missing_required_attrs_are_afs_607_in_table_order(
    world: World, pool: Pool, drop: tuple[str, ...], missing: str, how: str
) -> None:
    pool(1)
    (dsn,) = reserve(world)
    body: dict[str, Any] = {**MANUFACTURE, **OPTIONAL}
    for name in drop:
        if how == "absent":
            del body[name]
        else:
            body[name] = "" if how == "empty" else None
    message = f"There are some missing required attrs: {missing}"
    assert_error(manufacture(world, dsn, body), 422, "AFS-607", message)
    assert device(world, dsn)["status"] == "reserved"
    job = last_job(world, dsn)
    assert (job["operation"], job["result"], job["error_code"], job["message"]) == (
        "manufacture",
        "failure",
        "AFS-607",
        message,
    )


def test_missing_attrs_are_reported_before_anything_else(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    body = {"model": "XYZ", "mac": "not a mac", "hwsig": "", "dom_at": "2016-11-24"}
    assert_error(
        manufacture(world, dsn, body), 422, "AFS-607", "There are some missing required attrs: hwsig"
    )


# --- AFS-601 ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["XYZ", "AY001MTC2", "AY001RTA", "ay001mtp1"])
def test_a_model_other_than_the_devices_is_afs_601(world: World, pool: Pool, model: str) -> None:
    pool(1)
    (dsn,) = reserve(world)
    message = f"{model} is not a valid model"
    assert_error(manufacture(world, dsn, {**MANUFACTURE, "model": model}), 422, "AFS-601", message)
    assert device(world, dsn)["status"] == "reserved"
    job = last_job(world, dsn)
    assert (job["operation"], job["result"], job["error_code"], job["message"]) == (
        "manufacture",
        "failure",
        "AFS-601",
        message,
    )


def test_model_is_checked_before_the_date_and_the_fields(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    body = {**MANUFACTURE, "model": "AY001MTC2", "mac": "bad", "dom_at": "2016-11-24"}
    assert_error(manufacture(world, dsn, body), 422, "AFS-601", "AY001MTC2 is not a valid model")


# --- AFS-606 ------------------------------------------------------------------------------


def test_manufacturing_twice_is_afs_606(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert manufacture(world, dsn, MANUFACTURE).status_code == 200
    # Identical or different data: the device is no longer reserved.
    for body in (MANUFACTURE, {**MANUFACTURE, "mac": "aabbccddeeff", "hwsig": "new"}):
        assert_error(manufacture(world, dsn, body), 422, "AFS-606", "Device is already manufactured")
    assert device(world, dsn)["mac"] == "1dee6ea206ac"
    assert jobs(world, dsn) == [
        ("reserve", "success", None),
        ("manufacture", "success", None),
        ("manufacture", "failure", "AFS-606"),
        ("manufacture", "failure", "AFS-606"),
    ]


@pytest.mark.parametrize("user", ["mm", "mm_admin", "ayla"])
def test_manufacturing_a_provisioned_device_is_afs_606(world: World, pool: Pool, user: str) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert manufacture(world, dsn, MANUFACTURE).status_code == 200
    ok(provision(world, dsn, PROVISION, "mom"))
    body = {**MANUFACTURE, "mac": "aabbccddeeff", "hwsig": "other"}
    assert_error(manufacture(world, dsn, body, user), 422, "AFS-606", "Device is already manufactured")
    assert device(world, dsn)["status"] == "provisioned"
    assert jobs(world, dsn)[-1] == ("manufacture", "failure", "AFS-606")


def test_on_a_manufactured_device_607_and_601_come_before_606(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert manufacture(world, dsn, MANUFACTURE).status_code == 200
    missing = {k: v for k, v in MANUFACTURE.items() if k != "mac"}
    assert_error(
        manufacture(world, dsn, missing), 422, "AFS-607", "There are some missing required attrs: mac"
    )
    assert_error(
        manufacture(world, dsn, {**MANUFACTURE, "model": "AY001MTC2"}),
        422,
        "AFS-601",
        "AY001MTC2 is not a valid model",
    )


def test_on_a_manufactured_device_606_comes_before_608_and_600(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert manufacture(world, dsn, MANUFACTURE).status_code == 200
    body = {**MANUFACTURE, "dom_at": "2016-11-24", "mac": "zz", "odm": "x" * 300}
    assert_error(manufacture(world, dsn, body), 422, "AFS-606", "Device is already manufactured")


# --- AFS-608 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dom_at",
    [
        "2016-11-24",
        "2016/11/24 10:34:23",
        "2016/11/24 10:34:23 PST",
        "2016/11/24 10:34:23 +0000",
        "2016-11-24T10:34:23Z",
        "2016/13/24 10:34:23 UTC",
        "2016/11/31 10:34:23 UTC",
        "2015/02/29 10:34:23 UTC",
        "2016/11/24 25:34:23 UTC",
        "24/11/2016 10:34:23 UTC",
        "2016/11/24 UTC",
        "yesterday",
    ],
)
def test_a_bad_date_is_afs_608(world: World, pool: Pool, dom_at: str) -> None:
    pool(1)
    (dsn,) = reserve(world)
    message = f"{dom_at} is not valid. Valid date format is %Y/%m/%d %H:%M:%S %Z"
    assert_error(manufacture(world, dsn, {**MANUFACTURE, "dom_at": dom_at}), 422, "AFS-608", message)
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn)[-1] == ("manufacture", "failure", "AFS-608")


@pytest.mark.parametrize("dom_at", [20161124, 1.5, True, ["2016/11/24 10:34:23 UTC"], {"d": 1}])
def test_a_date_that_is_not_a_string_is_afs_608(world: World, pool: Pool, dom_at: object) -> None:
    pool(1)
    (dsn,) = reserve(world)
    message = assert_error(manufacture(world, dsn, {**MANUFACTURE, "dom_at": dom_at}), 422, "AFS-608")
    assert message.endswith(" is not valid. Valid date format is %Y/%m/%d %H:%M:%S %Z")


def test_the_date_is_checked_before_the_other_fields(world: World, pool: Pool) -> None:
    pool(2)
    (first, second) = reserve(world, count=2)
    assert manufacture(world, first, MANUFACTURE).status_code == 200
    body = {**MANUFACTURE, "dom_at": "2016-11-24", "odm": "x" * 300}  # mac and hwsig taken too
    assert_error(
        manufacture(world, second, body),
        422,
        "AFS-608",
        "2016-11-24 is not valid. Valid date format is %Y/%m/%d %H:%M:%S %Z",
    )


# --- AFS-600 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mac",
    [
        "1D:EE:6E:A2:06",
        "1dee6ea206",
        "1dee6ea206ac00",
        "zzzzzzzzzzzz",
        "1g:ee:6e:a2:06:ac",
        "1D.EE.6E.A2.06.AC",
        "1D EE 6E A2 06 AC",
        "0x1dee6ea206",
        "1dee6ea206a\n",
        True,
        ["1dee6ea206ac"],
    ],
)
def test_a_bad_mac_is_afs_600(world: World, pool: Pool, mac: object) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert_failures(manufacture(world, dsn, {**MANUFACTURE, "mac": mac}), "mac")
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn)[-1] == ("manufacture", "failure", "AFS-600")


def test_mac_and_hwsig_taken_by_another_device_are_afs_600(world: World, pool: Pool) -> None:
    pool(2)
    first, second = reserve(world, count=2)
    assert manufacture(world, first, MANUFACTURE).status_code == 200
    both = {**MANUFACTURE, "mac": "1d-ee-6e-a2-06-ac"}
    assert_error(
        manufacture(world, second, both),
        422,
        "AFS-600",
        FAILURES + "mac is already taken, hwsig is already taken",
    )
    assert_error(
        manufacture(world, second, {**MANUFACTURE, "hwsig": "fresh"}),
        422,
        "AFS-600",
        FAILURES + "mac is already taken",
    )
    assert_error(
        manufacture(world, second, {**MANUFACTURE, "mac": "aabbccddeeff"}),
        422,
        "AFS-600",
        FAILURES + "hwsig is already taken",
    )
    assert device(world, second)["status"] == "reserved"
    assert device(world, second)["mac"] is None
    assert jobs(world, second) == [
        ("reserve", "success", None),
        ("manufacture", "failure", "AFS-600"),
        ("manufacture", "failure", "AFS-600"),
        ("manufacture", "failure", "AFS-600"),
    ]
    # With fresh values the second device goes through.
    fresh = {**MANUFACTURE, "mac": "aabbccddeeff", "hwsig": "fresh"}
    assert manufacture(world, second, fresh).status_code == 200


def test_a_mac_taken_between_the_check_and_the_write_is_afs_600_with_its_job(
    world: World, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a concurrent request can win on PostgreSQL: the check sees the mac free,
    the database's unique index refuses the write. The call is refused whole, the device
    keeps its state, and the refusal is recorded as the device's last job."""
    pool(2)
    first, second = reserve(world, count=2)
    assert manufacture(world, first, MANUFACTURE).status_code == 200
    monkeypatch.setattr(queries, "unique_holders", lambda *_: {})  # the check misses it
    response = manufacture(world, second, {**MANUFACTURE, "hwsig": "fresh"})
    assert_error(response, 422, "AFS-600", FAILURES + "mac or hwsig is already taken")
    assert device(world, second)["status"] == "reserved"
    assert device(world, second)["mac"] is None
    assert jobs(world, second)[-1] == ("manufacture", "failure", "AFS-600")
    assert [job for job in jobs(world, second) if job[0] == "manufacture"] == [
        ("manufacture", "failure", "AFS-600")
    ]


def test_a_mac_taken_by_another_oems_device_is_afs_600(world: World, pool: Pool) -> None:
    pool(2)
    (mine,) = reserve(world, "mm")
    (theirs,) = reserve(world, "mm2")
    assert manufacture(world, theirs, MANUFACTURE, "mm2").status_code == 200
    assert_error(
        manufacture(world, mine, {**MANUFACTURE, "hwsig": "mine"}),
        422,
        "AFS-600",
        FAILURES + "mac is already taken",
    )


@pytest.mark.parametrize(
    ("field", "length"),
    [
        ("hwsig", 129),
        ("manuf_model", 256),
        ("manuf_sn", 256),
        ("odm", 256),
        ("module_sw_version", 256),
        ("wifi_setup_key", 256),
        ("hwsig", 10_000),
    ],
)
def test_over_long_strings_are_afs_600(world: World, pool: Pool, field: str, length: int) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert_failures(manufacture(world, dsn, {**MANUFACTURE, field: "x" * length}), field)
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn)[-1] == ("manufacture", "failure", "AFS-600")


@pytest.mark.parametrize(
    "field", ["hwsig", "manuf_model", "manuf_sn", "odm", "module_sw_version", "wifi_setup_key"]
)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("ab\x00cd", id="nul"),
        pytest.param("ab\ncd", id="newline"),
        pytest.param("ab\tcd", id="tab"),
        pytest.param("\x1b[2Jab", id="escape"),
        pytest.param("ab\x7fcd", id="delete"),
        pytest.param("ab\x85cd", id="c1-next-line"),
        pytest.param("ab\x9b2Jcd", id="c1-csi"),
    ],
)
def test_control_characters_are_afs_600(world: World, pool: Pool, field: str, value: str) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert_failures(manufacture(world, dsn, {**MANUFACTURE, field: value}), field)
    assert device(world, dsn)["status"] == "reserved"


def test_all_field_failures_are_listed_together(world: World, pool: Pool) -> None:
    pool(2)
    first, second = reserve(world, count=2)
    assert manufacture(world, first, {**MANUFACTURE, "hwsig": "taken"}).status_code == 200
    body = {**MANUFACTURE, "mac": "nope", "hwsig": "taken", "odm": "o" * 256, "manuf_sn": "a\x01b"}
    failures = assert_failures(manufacture(world, second, body), "mac", "hwsig", "manuf_sn", "odm")
    assert "hwsig is already taken" in failures


@pytest.mark.parametrize("field", ["hwsig", "manuf_model", "odm"])
@pytest.mark.parametrize("value", [{"a": 1}, ["a"], True])
def test_a_field_that_is_not_a_string_is_afs_600(world: World, pool: Pool, field: str, value: object) -> None:
    pool(1)
    (dsn,) = reserve(world)
    assert_failures(manufacture(world, dsn, {**MANUFACTURE, field: value}), field)


@pytest.mark.parametrize(
    ("field", "stored", "given"),
    [("hwsig", "12345", 12345), ("mac", "123456789012", 123456789012)],
)
def test_a_taken_value_given_as_a_json_number_is_afs_600(
    world: World, pool: Pool, field: str, stored: str, given: int
) -> None:
    # Whether a number is accepted as text or refused, it is never a 500.
    pool(2)
    first, second = reserve(world, count=2)
    assert manufacture(world, first, {**MANUFACTURE, field: stored}).status_code == 200
    other = {"mac": "aabbccddeeff", "hwsig": "other"}
    body = {**MANUFACTURE, **other, field: given}
    assert_failures(manufacture(world, second, body), field)
    assert device(world, second)["status"] == "reserved"
    assert jobs(world, second)[-1] == ("manufacture", "failure", "AFS-600")
