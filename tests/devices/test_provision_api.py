"""POST /devicefactory/v1/devices/:dsn/provision against the AFS 2.2 contract (§4).

Black box (reserved and manufactured by a module maker, provisioned by any product
maker) and white box (reserved and provisioned by the same software OEM): roles, the
tenant wall, required fields (depending on what manufacture already set), the factory
values provision may only repeat, AFS-609, ownership, and the jobs left behind.
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
from devicefactory.devices.dsn import format_dsn

V1 = "/devicefactory/v1/devices"
MISSING = "There are some missing required attrs: "
MANUFACTURE = {
    "model": "AY001MTP1",
    "mac": "1D:EE:6E:A2:06:AC",
    "hwsig": "hwsig_5NU41",
    "dom_at": "2016/11/24 10:34:23 UTC",
    "manuf_model": "mfg_model_HdsbL",
    "manuf_sn": "SN-1",
    "odm": "odm_A",
    "module_sw_version": "sw 1.0",
    "wifi_setup_key": "wsk",
    "ads_connect_flag": False,
}
# What a product maker must send for a fully manufactured black-box module.
BLACK = {"model": "AY001MTP1", "oem_model": "UniqueModelName123", "oem_host_version": "2.0"}
WHITE = {
    "model": "AY001RTA",
    "oem_model": "zbgw",
    "oem_host_version": "1.0",
    "mac": "12:34:56:78:9A:BC",
    "manuf_model": "linux",
    "module_sw_version": "devd 1.0",
    "dom_at": "2014/06/02 16:21:10 UTC",
}

Pool = Callable[[int], None]


# --- helpers ------------------------------------------------------------------------------


def manufactured(world: World, body: dict[str, Any] | None = None, user: str = "mm") -> str:
    """A black-box module reserved and manufactured by ``user``."""
    (dsn,) = reserve(world, user, "AY001MTP1")
    ok(manufacture(world, dsn, body or MANUFACTURE, user))
    return dsn


def assert_reads_as_unknown(world: World, user: str, dsn: str, body: Any) -> None:
    """404 with exactly the body an unknown DSN gets (with its DSN in place of this one)."""
    assert_same_as_unknown(lambda d: provision(world, d, body, user), dsn)


# --- black box ----------------------------------------------------------------------------


def test_black_box_provision_records_the_product_data(world: World, pool: Pool, clock: Any) -> None:
    pool(1)
    dsn = manufactured(world)
    response = provision(world, dsn, BLACK, "mom")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "device": {
            "dsn": dsn,
            "model": "AY001MTP1",
            "mac": "1dee6ea206ac",
            "hwsig": "hwsig_5NU41",
            "odm": "odm_A",
            "manuf_model": "mfg_model_HdsbL",
            "manuf_sn": "SN-1",
            "module_sw_version": "sw 1.0",
            "oem_host_version": "2.0",
            "wifi_setup_key": "wsk",
            "ads_connect_flag": False,
            "dom_at": "2016-11-24T10:34:23Z",
            "oem": world.oem_ids["products"],
            "oem_model": "UniqueModelName123",
        }
    }
    stored = device(world, dsn)
    assert stored["status"] == "provisioned"
    assert stored["provisioned_at"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert stored["reserved_by"] == world.oem_ids["modules"]
    assert jobs(world, dsn) == [
        ("reserve", "success", None),
        ("manufacture", "success", None),
        ("provision", "success", None),
    ]
    # The owner sees it now; the module maker still sees what it reserved; others do not.
    for user in ("mom", "product_admin", "mm", "mm_admin"):
        assert world.client.get(f"{V1}/{dsn}", headers=world.headers(user)).status_code == 200
    for user in ("mom2", "mm2", "som", "gateway_admin"):
        assert world.client.get(f"{V1}/{dsn}", headers=world.headers(user)).status_code == 404


@pytest.mark.parametrize(
    ("user", "oem"),
    [
        ("mom", "products"),
        ("mom2", "products2"),
        ("product_admin", "products"),
        ("gateway_admin", "gateways"),
    ],
)
def test_any_product_maker_provisions_a_manufactured_black_box(
    world: World, pool: Pool, user: str, oem: str
) -> None:
    pool(1)
    dsn = manufactured(world)
    response = provision(world, dsn, BLACK, user)
    assert response.status_code == 200, response.text
    assert response.json()["device"]["oem"] == world.oem_ids[oem]
    assert device(world, dsn)["oem"] == world.oem_ids[oem]
    assert world.client.get(f"{V1}/{dsn}", headers=world.headers(user)).status_code == 200


def test_ayla_admin_provisions_a_black_box(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    response = provision(world, dsn, BLACK, "ayla")
    assert response.status_code == 200, response.text
    assert device(world, dsn)["status"] == "provisioned"


def test_a_module_of_another_module_maker_is_provisioned_too(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world, user="mm2")
    response = provision(world, dsn, BLACK, "mom")
    assert response.status_code == 200, response.text
    assert response.json()["device"]["oem"] == world.oem_ids["products"]


@pytest.mark.parametrize("user", ["mm", "mm_admin", "mm2"])
def test_module_makers_may_not_provision(world: World, pool: Pool, user: str) -> None:
    pool(1)
    dsn = manufactured(world)
    assert_error(provision(world, dsn, BLACK, user), 403, "AFS-403")
    assert device(world, dsn)["status"] == "manufactured"
    assert jobs(world, dsn)[-1] == ("manufacture", "success", None)


@pytest.mark.parametrize("user", ["som", "som2"])
def test_a_software_oem_cannot_reach_a_black_box_module(world: World, pool: Pool, user: str) -> None:
    pool(1)
    dsn = manufactured(world)
    assert_reads_as_unknown(world, user, dsn, BLACK)
    assert device(world, dsn)["status"] == "manufactured"
    assert jobs(world, dsn)[-1] == ("manufacture", "success", None)


@pytest.mark.parametrize("user", ["mom", "mom2", "product_admin", "gateway_admin", "som"])
def test_a_reserved_but_not_manufactured_black_box_is_not_reachable(
    world: World, pool: Pool, user: str
) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm", "AY001MTP1")
    full = {**BLACK, **{k: v for k, v in MANUFACTURE.items() if k != "model"}}
    assert_reads_as_unknown(world, user, dsn, full)
    assert_reads_as_unknown(world, user, dsn, {})
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn) == [("reserve", "success", None)]


@pytest.mark.parametrize("user", ["mom2", "som", "som2", "gateway_admin"])
def test_a_device_provisioned_by_products_is_not_reachable_for_other_oems(
    world: World, pool: Pool, user: str
) -> None:
    pool(1)
    dsn = manufactured(world)
    assert provision(world, dsn, BLACK, "mom").status_code == 200
    assert_reads_as_unknown(world, user, dsn, BLACK)
    assert_reads_as_unknown(world, user, dsn, {})
    assert jobs(world, dsn)[-1] == ("provision", "success", None)
    assert device(world, dsn)["oem"] == world.oem_ids["products"]


def test_the_404_body_is_identical_before_and_after_the_device_exists(
    world: World, pool: Pool, settings: Settings
) -> None:
    pool(1)
    dsn = format_dsn(settings.dsn_prefix, 1)
    before = provision(world, dsn, BLACK, "mom2")
    assert_error(before, 404, "AFS-404")
    assert manufactured(world) == dsn
    assert provision(world, dsn, BLACK, "mom").status_code == 200
    after = provision(world, dsn, BLACK, "mom2")
    assert after.status_code == 404
    assert after.json() == before.json()


# --- white box ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reserver", "user", "oem"),
    [
        ("som", "som", "gateways"),
        ("som", "gateway_admin", "gateways"),
        ("gateway_admin", "som", "gateways"),
        ("product_admin", "product_admin", "products"),
        ("som2", "som2", "gateways2"),
    ],
)
def test_white_box_provision_by_the_reserving_oem(
    world: World, pool: Pool, reserver: str, user: str, oem: str
) -> None:
    pool(1)
    (dsn,) = reserve(world, reserver, "AY001RTA")
    response = provision(world, dsn, WHITE, user)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "device": {
            "dsn": dsn,
            "model": "AY001RTA",
            "mac": "123456789abc",
            "hwsig": "mac-123456789abc",
            "odm": None,
            "manuf_model": "linux",
            "manuf_sn": None,
            "module_sw_version": "devd 1.0",
            "oem_host_version": "1.0",
            "wifi_setup_key": None,
            "ads_connect_flag": None,
            "dom_at": "2014-06-02T16:21:10Z",
            "oem": world.oem_ids[oem],
            "oem_model": "zbgw",
        }
    }
    assert device(world, dsn)["status"] == "provisioned"
    assert jobs(world, dsn) == [("reserve", "success", None), ("provision", "success", None)]


def test_ayla_admin_provisions_a_white_box(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    response = provision(world, dsn, WHITE, "ayla")
    assert response.status_code == 200, response.text
    assert device(world, dsn)["status"] == "provisioned"


def test_white_box_keeps_a_given_hwsig(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    response = provision(
        world, dsn, {**WHITE, "hwsig": "gw-sig-1", "odm": "odm", "ads_connect_flag": "1"}, "som"
    )
    assert response.status_code == 200, response.text
    body = response.json()["device"]
    assert (body["hwsig"], body["odm"], body["ads_connect_flag"]) == ("gw-sig-1", "odm", True)


@pytest.mark.parametrize("hwsig", ["", None])
def test_white_box_empty_hwsig_gets_the_mac_form(world: World, pool: Pool, hwsig: str | None) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    response = provision(world, dsn, {**WHITE, "mac": "AA-BB-CC-DD-EE-FF", "hwsig": hwsig}, "som")
    assert response.status_code == 200, response.text
    assert response.json()["device"]["hwsig"] == "mac-aabbccddeeff"


@pytest.mark.parametrize("user", ["mm", "mm_admin"])
def test_module_makers_may_not_provision_a_white_box(world: World, pool: Pool, user: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert_error(provision(world, dsn, WHITE, user), 403, "AFS-403")
    assert jobs(world, dsn) == [("reserve", "success", None)]


@pytest.mark.parametrize("user", ["som2", "mom", "mom2", "product_admin"])
def test_another_oems_white_box_reads_as_unknown(world: World, pool: Pool, user: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert_reads_as_unknown(world, user, dsn, WHITE)
    assert_reads_as_unknown(world, user, dsn, {})
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn) == [("reserve", "success", None)]


def test_a_module_oem_manufacturer_cannot_reach_its_own_oems_white_box(world: World, pool: Pool) -> None:
    # ModuleOEMManufacturer provisions black-box modules only.
    pool(1)
    (dsn,) = reserve(world, "product_admin", "AY001RTA")
    assert_reads_as_unknown(world, "mom", dsn, {**WHITE})
    assert jobs(world, dsn) == [("reserve", "success", None)]


def test_a_software_oem_may_not_provision_a_black_box_its_oem_reserved(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "ayla", "AY001MTP1", oem_id=world.oem_ids["gateways"])
    body = {**BLACK, **{k: v for k, v in MANUFACTURE.items() if k != "model"}}
    response = provision(world, dsn, body, "som")
    if response.status_code == 404:
        assert_reads_as_unknown(world, "som", dsn, body)
    else:
        assert_error(response, 422, "AFS-601", "AY001MTP1 is not a valid model")
    assert device(world, dsn)["status"] == "reserved"


# --- ownership ----------------------------------------------------------------------------


def test_an_oem_in_the_body_does_not_choose_the_owner(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    body = {**BLACK, "oem": world.oem_ids["products2"], "oem_id": world.oem_ids["products2"], "owner": "x"}
    response = provision(world, dsn, body, "mom")
    assert response.status_code == 200, response.text
    assert response.json()["device"]["oem"] == world.oem_ids["products"]
    assert world.client.get(f"{V1}/{dsn}", headers=world.headers("mom2")).status_code == 404


def test_unknown_body_keys_are_ignored(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    response = provision(world, dsn, {**BLACK, "colour": "blue", "status": "reserved", "dsn": "X"}, "mom")
    assert response.status_code == 200, response.text
    assert device(world, dsn)["status"] == "provisioned"


def test_json_suffix_is_accepted(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    response = world.client.post(f"{V1}/{dsn}/provision.json", json=BLACK, headers=world.headers("mom"))
    assert response.status_code == 200, response.text


# --- 401 and malformed bodies -------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "auth_token nope"}, {"Authorization": "Bearer "}])
def test_provision_without_a_valid_token_is_401(world: World, pool: Pool, headers: dict[str, str]) -> None:
    pool(1)
    dsn = manufactured(world)
    response = world.client.post(f"{V1}/{dsn}/provision", json=BLACK, headers=headers)
    assert_error(response, 401, "AFS-401")
    assert device(world, dsn)["status"] == "manufactured"


@pytest.mark.parametrize("raw", [b"{", b'{"model": "AY001MTP1"', b"[]", b'"x"', b"null", b"", b"3.5"])
def test_malformed_json_or_not_an_object_is_afs_600(world: World, pool: Pool, raw: bytes) -> None:
    pool(1)
    dsn = manufactured(world)
    response = world.client.post(
        f"{V1}/{dsn}/provision",
        content=raw,
        headers={**world.headers("mom"), "Content-Type": "application/json"},
    )
    assert_error(response, 422, "AFS-600")
    assert device(world, dsn)["status"] == "manufactured"


# --- AFS-607 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({}, "model, oem_model, oem_host_version"),
        ({"model": "AY001MTP1"}, "oem_model, oem_host_version"),
        ({"oem_model": "x", "oem_host_version": "1"}, "model"),
        ({**BLACK, "oem_model": ""}, "oem_model"),
        ({**BLACK, "oem_host_version": None}, "oem_host_version"),
        ({**BLACK, "model": None, "oem_model": ""}, "model, oem_model"),
    ],
)
def test_black_box_fully_manufactured_requires_model_oem_model_and_host_version(
    world: World, pool: Pool, body: dict[str, Any], missing: str
) -> None:
    pool(1)
    dsn = manufactured(world)
    assert_error(provision(world, dsn, body, "mom"), 422, "AFS-607", MISSING + missing)
    assert device(world, dsn)["status"] == "manufactured"
    job = last_job(world, dsn)
    assert (job["operation"], job["result"], job["error_code"], job["message"]) == (
        "provision",
        "failure",
        "AFS-607",
        MISSING + missing,
    )


MINIMAL_MANUFACTURE = {k: MANUFACTURE[k] for k in ("model", "mac", "hwsig", "dom_at")}


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({}, "model, manuf_model, oem_model, module_sw_version, oem_host_version"),
        (BLACK, "manuf_model, module_sw_version"),
        ({**BLACK, "manuf_model": "m"}, "module_sw_version"),
        ({**BLACK, "module_sw_version": ""}, "manuf_model, module_sw_version"),
    ],
)
def test_black_box_requires_what_manufacture_did_not_set(
    world: World, pool: Pool, body: dict[str, Any], missing: str
) -> None:
    pool(1)
    dsn = manufactured(world, MINIMAL_MANUFACTURE)
    assert_error(provision(world, dsn, body, "mom"), 422, "AFS-607", MISSING + missing)
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-607")
    response = provision(world, dsn, {**BLACK, "manuf_model": "m", "module_sw_version": "1"}, "mom")
    assert response.status_code == 200, response.text
    assert (response.json()["device"]["manuf_model"], response.json()["device"]["module_sw_version"]) == (
        "m",
        "1",
    )


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        (tuple(WHITE), "model, manuf_model, mac, oem_model, module_sw_version, oem_host_version, dom_at"),
        (("mac",), "mac"),
        (("dom_at",), "dom_at"),
        (("manuf_model", "module_sw_version"), "manuf_model, module_sw_version"),
        (("oem_host_version", "model"), "model, oem_host_version"),
        (("mac", "oem_model", "dom_at"), "mac, oem_model, dom_at"),
    ],
)
@pytest.mark.parametrize("how", ["absent", "empty", "null"])
def test_white_box_required_attrs_in_table_order(
    world: World, pool: Pool, drop: tuple[str, ...], missing: str, how: str
) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    body: dict[str, Any] = dict(WHITE)
    for name in drop:
        if how == "absent":
            del body[name]
        else:
            body[name] = "" if how == "empty" else None
    assert_error(provision(world, dsn, body, "som"), 422, "AFS-607", MISSING + missing)
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-607")


def test_missing_attrs_are_reported_before_anything_else(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    body = {**WHITE, "model": "XYZ", "mac": "bad", "dom_at": "2016-11-24", "oem_host_version": ""}
    assert_error(provision(world, dsn, body, "som"), 422, "AFS-607", MISSING + "oem_host_version")


# --- AFS-601 ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["XYZ", "AY001MTC2", "AY001RTA"])
def test_black_box_model_mismatch_is_afs_601(world: World, pool: Pool, model: str) -> None:
    pool(1)
    dsn = manufactured(world)
    message = f"{model} is not a valid model"
    assert_error(provision(world, dsn, {**BLACK, "model": model}, "mom"), 422, "AFS-601", message)
    job = last_job(world, dsn)
    assert (job["operation"], job["result"], job["error_code"], job["message"]) == (
        "provision",
        "failure",
        "AFS-601",
        message,
    )
    assert device(world, dsn)["status"] == "manufactured"


@pytest.mark.parametrize("model", ["XYZ", "AY001MTP1"])
def test_white_box_model_mismatch_is_afs_601(world: World, pool: Pool, model: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    body = {**WHITE, "model": model, "hwsig": "sig"}
    assert_error(provision(world, dsn, body, "som"), 422, "AFS-601", f"{model} is not a valid model")
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-601")


# --- AFS-609 ------------------------------------------------------------------------------


@pytest.mark.parametrize("again", ["mom", "product_admin", "ayla"])
def test_provisioning_twice_is_afs_609(world: World, pool: Pool, again: str) -> None:
    pool(1)
    dsn = manufactured(world)
    assert provision(world, dsn, BLACK, "mom").status_code == 200
    for body in (BLACK, {**BLACK, "oem_model": "Other", "oem_host_version": "3.0"}):
        assert_error(provision(world, dsn, body, again), 422, "AFS-609", "Device is already provisioned")
    stored = device(world, dsn)
    assert (stored["oem_model"], stored["oem_host_version"]) == ("UniqueModelName123", "2.0")
    assert stored["oem"] == world.oem_ids["products"]
    assert jobs(world, dsn)[-2:] == [("provision", "failure", "AFS-609"), ("provision", "failure", "AFS-609")]


def test_white_box_provisioning_twice_is_afs_609(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert provision(world, dsn, WHITE, "som").status_code == 200
    assert_error(
        provision(world, dsn, WHITE, "gateway_admin"), 422, "AFS-609", "Device is already provisioned"
    )
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-609")


def test_manufacture_then_provision_then_manufacture_again(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    assert provision(world, dsn, BLACK, "mom").status_code == 200
    again = manufacture(world, dsn, MANUFACTURE)
    assert_error(again, 422, "AFS-606", "Device is already manufactured")


# --- factory values may only be repeated --------------------------------------------------


@pytest.mark.parametrize(
    ("field", "same"),
    [
        ("mac", "1d-ee-6e-a2-06-ac"),
        ("mac", "1DEE6EA206AC"),
        ("hwsig", "hwsig_5NU41"),
        ("dom_at", "2016/11/24 10:34:23 GMT"),
        ("manuf_model", "mfg_model_HdsbL"),
        ("manuf_sn", "SN-1"),
        ("odm", "odm_A"),
        ("module_sw_version", "sw 1.0"),
        ("wifi_setup_key", "wsk"),
        ("ads_connect_flag", "false"),
        ("ads_connect_flag", 0),
    ],
)
def test_repeating_a_manufactured_value_is_fine(world: World, pool: Pool, field: str, same: object) -> None:
    pool(1)
    dsn = manufactured(world)
    response = provision(world, dsn, {**BLACK, field: same}, "mom")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("field", "other"),
    [
        ("mac", "aabbccddeeff"),
        ("hwsig", "another_sig"),
        ("dom_at", "2016/11/24 10:34:24 UTC"),
        ("manuf_model", "other_model"),
        ("manuf_sn", "SN-2"),
        ("odm", "odm_B"),
        ("module_sw_version", "sw 2.0"),
        ("wifi_setup_key", "other"),
        ("ads_connect_flag", True),
    ],
)
def test_changing_a_manufactured_value_is_afs_600_naming_the_field(
    world: World, pool: Pool, field: str, other: object
) -> None:
    pool(1)
    dsn = manufactured(world)
    assert_failures(provision(world, dsn, {**BLACK, field: other}, "mom"), field)
    stored = device(world, dsn)
    assert stored["status"] == "manufactured"
    assert stored["oem"] is None
    assert stored["mac"] == "1dee6ea206ac"
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-600")
    # Still reachable and provisionable with the right values.
    assert provision(world, dsn, BLACK, "mom").status_code == 200


def test_every_changed_value_is_listed(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    body = {**BLACK, "mac": "aabbccddeeff", "hwsig": "x", "odm": "y"}
    assert_failures(provision(world, dsn, body, "mom"), "mac", "hwsig", "odm")


# --- AFS-608 and other field failures -----------------------------------------------------


@pytest.mark.parametrize("dom_at", ["2016-11-24", "2014/06/02 16:21:10", "2014/06/02 16:21:10 CET", "x"])
def test_white_box_bad_date_is_afs_608(world: World, pool: Pool, dom_at: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    message = f"{dom_at} is not valid. Valid date format is %Y/%m/%d %H:%M:%S %Z"
    assert_error(provision(world, dsn, {**WHITE, "dom_at": dom_at}, "som"), 422, "AFS-608", message)
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-608")
    assert device(world, dsn)["status"] == "reserved"


def test_black_box_bad_date_is_afs_608(world: World, pool: Pool) -> None:
    pool(1)
    dsn = manufactured(world)
    assert_error(
        provision(world, dsn, {**BLACK, "dom_at": "2016-11-24"}, "mom"),
        422,
        "AFS-608",
        "2016-11-24 is not valid. Valid date format is %Y/%m/%d %H:%M:%S %Z",
    )


def test_the_date_is_checked_before_the_other_fields(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    body = {**WHITE, "dom_at": "2016-11-24", "mac": "bad", "oem_model": "x" * 300}
    assert_error(provision(world, dsn, body, "som"), 422, "AFS-608")


@pytest.mark.parametrize("mac", ["123456789a", "zz:zz:zz:zz:zz:zz", "12.34.56.78.9a.bc", "123456789abcd"])
def test_white_box_bad_mac_is_afs_600(world: World, pool: Pool, mac: str) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert_failures(provision(world, dsn, {**WHITE, "mac": mac}, "som"), "mac")
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-600")


def test_white_box_mac_or_hwsig_taken_is_afs_600(world: World, pool: Pool) -> None:
    pool(2)
    first, second = reserve(world, "som", "AY001RTA", 2)
    assert provision(world, first, {**WHITE, "hwsig": "gw-1"}, "som").status_code == 200
    assert_error(
        provision(world, second, {**WHITE, "mac": "12-34-56-78-9a-bc", "hwsig": "gw-1"}, "som"),
        422,
        "AFS-600",
        FAILURES + "mac is already taken, hwsig is already taken",
    )
    assert_error(
        provision(world, second, {**WHITE, "mac": "aabbccddeeff", "hwsig": "gw-1"}, "som"),
        422,
        "AFS-600",
        FAILURES + "hwsig is already taken",
    )
    assert jobs(world, second)[-1] == ("provision", "failure", "AFS-600")
    assert device(world, second)["status"] == "reserved"


def test_white_box_mac_taken_by_a_black_box_module_is_afs_600(world: World, pool: Pool) -> None:
    pool(2)
    manufactured(world, {**MANUFACTURE, "mac": "12:34:56:78:9a:bc"})
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert_error(
        provision(world, dsn, WHITE, "som"),
        422,
        "AFS-600",
        FAILURES + "mac is already taken",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("oem_model", "m" * 256),
        ("oem_host_version", "v" * 256),
        ("manuf_model", "x" * 256),
        ("hwsig", "h" * 129),
        ("oem_model", "a\x00b"),
        ("oem_host_version", "1.0\nX"),
        ("oem_model", "a\x1b[31mb"),
        ("oem_host_version", "1\x7f"),
        ("oem_model", "a\x9bb"),
    ],
)
def test_over_long_or_control_character_values_are_afs_600(
    world: World, pool: Pool, field: str, value: str
) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert_failures(provision(world, dsn, {**WHITE, field: value}, "som"), field)
    assert device(world, dsn)["status"] == "reserved"


def test_longest_allowed_values_are_accepted(world: World, pool: Pool) -> None:
    pool(1)
    (dsn,) = reserve(world, "som", "AY001RTA")
    body = {**WHITE, "oem_model": "m" * 255, "oem_host_version": "v" * 255, "hwsig": "h" * 128}
    response = provision(world, dsn, body, "som")
    assert response.status_code == 200, response.text
    assert response.json()["device"]["oem_model"] == "m" * 255


def test_white_box_default_hwsig_taken_by_another_device_is_afs_600(world: World, pool: Pool) -> None:
    pool(2)
    # A module whose hwsig happens to be the mac-<mac> form of the gateway's mac.
    manufactured(world, {**MANUFACTURE, "hwsig": "mac-123456789abc"})
    (dsn,) = reserve(world, "som", "AY001RTA")
    assert_error(
        provision(world, dsn, WHITE, "som"),
        422,
        "AFS-600",
        FAILURES + "hwsig is already taken",
    )
    assert device(world, dsn)["status"] == "reserved"
    assert jobs(world, dsn)[-1] == ("provision", "failure", "AFS-600")
