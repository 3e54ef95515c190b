"""POST /devicefactory/v1/devices/reserve against the AFS 2.2 contract (§4 reserve).

Every error path (AFS-401/403/600/601/602/603/604/605/607/610), their order, each
role allowed and forbidden, and what a reserve leaves behind (devices, jobs, action).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from tests.api import FAILURES, assert_error, device, jobs, manufacture, ok, post_reserve, reservation
from tests.world import PASSWORD, World, factory_certificate, sign_in

from devicefactory.config import Settings
from devicefactory.db import session_scope
from devicefactory.devices.dsn import format_dsn
from devicefactory.tables.accounts import Oem

V1 = "/devicefactory/v1/devices"
RESERVE = f"{V1}/reserve"
ADMIN = "/devicefactory/v1/admin"
NOT_ENOUGH_KEYS = "There are not enough reservable devices for your request. Please try later"

Pool = Callable[[int], None]


# --- helpers ------------------------------------------------------------------------------


def set_reservation_limit(factory: sessionmaker[Session], oem_id: str, limit: int) -> None:
    with session_scope(factory) as session:
        session.execute(update(Oem).where(Oem.oem_id == oem_id).values(reservation_limit=limit))


def sequence(dsn: str, settings: Settings) -> int:
    assert dsn.startswith(settings.dsn_prefix)
    return int(dsn[len(settings.dsn_prefix) :])


def new_oem_user(world: World, role: str, *, module_manufacturer: bool) -> tuple[str, dict[str, str]]:
    """An OEM created through the admin API without a factory certificate, and a user of it."""
    admin = world.headers("ayla")
    created = world.client.post(
        f"{ADMIN}/oems",
        json={"oem": {"name": "No Certificate Inc", "module_manufacturer": module_manufacturer}},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    oem_id = created.json()["oem"]["oem_id"]
    assert created.json()["oem"]["has_factory_certificate"] is False
    email = f"nocert-{role.split('::')[1].lower()}@example.com"
    user = world.client.post(
        f"{ADMIN}/users",
        json={"user": {"email": email, "password": PASSWORD, "role": role, "oem_id": oem_id}},
        headers=admin,
    )
    assert user.status_code == 201, user.text
    token = sign_in(world.client, email)["access_token"]
    return oem_id, {"Authorization": f"auth_token {token}"}


# --- success ------------------------------------------------------------------------------


def test_reserve_returns_one_contiguous_range_in_dsn_order(
    world: World, pool: Pool, settings: Settings
) -> None:
    pool(3)
    response = post_reserve(world, "mm", {"model": "AY001MTP1", "count": 3})
    assert response.status_code == 200, response.text
    assert response.headers["X-Factory-Action"].isdigit()
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 3
    assert all(list(item) == ["device"] and set(item["device"]) == {"dsn", "public_key"} for item in body)
    dsns = [item["device"]["dsn"] for item in body]
    assert dsns == [format_dsn(settings.dsn_prefix, n) for n in (1, 2, 3)]
    keys = [item["device"]["public_key"] for item in body]
    assert len(set(keys)) == 3
    assert all(k.startswith("-----BEGIN RSA PUBLIC KEY-----\n") for k in keys)

    for dsn, key in zip(dsns, keys, strict=True):
        stored = device(world, dsn, "mm")
        assert stored["status"] == "reserved"
        assert stored["model"] == "AY001MTP1"
        assert stored["public_key"] == key
        assert stored["reserved_by"] == world.oem_ids["modules"]
        assert stored["reserve_action_id"] == int(response.headers["X-Factory-Action"])
        assert stored["oem"] is None
        assert "private_key" not in stored
        assert "sealed_private_key" not in stored
        assert jobs(world, dsn) == [("reserve", "success", None)]


def test_consecutive_reserves_continue_the_range(world: World, pool: Pool, settings: Settings) -> None:
    pool(3)
    first = reservation(world, "mm", "AY001MTP1", 1).devices
    second = reservation(world, "som", "AY001RTA", 2).devices
    sequences = [sequence(d["dsn"], settings) for d in first + second]
    assert sequences == [sequences[0], sequences[0] + 1, sequences[0] + 2]


def test_count_given_as_a_string_of_digits_is_accepted(world: World, pool: Pool) -> None:
    pool(2)
    devices = reservation(world, "mm", "AY001MTP1", "2").devices
    assert len(devices) == 2


@pytest.mark.parametrize("count", [1000, "1000"])
def test_count_of_1000_is_valid(world: World, count: object) -> None:
    # Valid, so the request reaches the key pool (empty here): AFS-605, not AFS-602.
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": count}), 422, "AFS-605")


def test_json_suffix_is_accepted(world: World, pool: Pool) -> None:
    pool(1)
    response = world.client.post(
        f"{RESERVE}.json", json={"model": "AY001MTP1", "count": 1}, headers=world.headers("mm")
    )
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1


def test_unknown_body_keys_are_ignored_and_oem_id_only_counts_for_ayla(world: World, pool: Pool) -> None:
    pool(1)
    (reserved,) = reservation(
        world, "mm", "AY001MTP1", 1, oem_id=world.oem_ids["gateways"], colour="blue", status="provisioned"
    ).devices
    stored = device(world, reserved["dsn"], "mm")
    assert stored["reserved_by"] == world.oem_ids["modules"]
    assert stored["status"] == "reserved"
    assert world.client.get(f"{V1}/{reserved['dsn']}", headers=world.headers("som")).status_code == 404


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "model", "oem"),
    [
        ("mm", "AY001MTP1", "modules"),
        ("mm", "AY001MTC2", "modules"),
        ("mm_admin", "AY001MTP1", "modules"),
        ("mm2", "AY001MTC2", "modules2"),
        ("som", "AY001RTA", "gateways"),
        ("som2", "AY001RTA", "gateways2"),
        ("gateway_admin", "AY001RTA", "gateways"),
        ("product_admin", "AY001RTA", "products"),
    ],
)
def test_roles_reserve_the_kinds_they_make(world: World, pool: Pool, user: str, model: str, oem: str) -> None:
    pool(1)
    (reserved,) = reservation(world, user, model, 1).devices
    stored = device(world, reserved["dsn"], user)
    assert stored["model"] == model
    assert stored["reserved_by"] == world.oem_ids[oem]


@pytest.mark.parametrize(
    ("user", "model"),
    [
        ("mm", "AY001RTA"),
        ("mm_admin", "AY001RTA"),
        ("mm2", "AY001RTA"),
        ("som", "AY001MTP1"),
        ("som2", "AY001MTC2"),
        ("gateway_admin", "AY001MTP1"),
        ("product_admin", "AY001MTC2"),
    ],
)
def test_a_model_of_a_kind_the_role_may_not_reserve_is_not_valid(
    world: World, pool: Pool, user: str, model: str
) -> None:
    pool(1)
    response = post_reserve(world, user, {"model": model, "count": 1})
    assert_error(response, 422, "AFS-601", f"{model} is not a valid model")


@pytest.mark.parametrize("model", ["AY001MTP1", "AY001MTC2", "AY001RTA"])
def test_ayla_admin_reserves_any_model_for_the_platform(world: World, pool: Pool, model: str) -> None:
    pool(1)
    (reserved,) = reservation(world, "ayla", model, 1).devices
    stored = device(world, reserved["dsn"])
    assert stored["model"] == model
    assert stored["reserved_by"] is None
    # Platform devices belong to no OEM: no OEM user sees them.
    for user in ("mm", "mom", "som", "product_admin"):
        assert world.client.get(f"{V1}/{reserved['dsn']}", headers=world.headers(user)).status_code == 404


@pytest.mark.parametrize(("model", "oem"), [("AY001MTP1", "gateways"), ("AY001RTA", "modules")])
def test_ayla_admin_reserves_for_an_oem_with_oem_id(world: World, pool: Pool, model: str, oem: str) -> None:
    pool(1)
    (reserved,) = reservation(world, "ayla", model, 1, oem_id=world.oem_ids[oem]).devices
    assert device(world, reserved["dsn"])["reserved_by"] == world.oem_ids[oem]


@pytest.mark.parametrize("oem_id", ["", None])
def test_ayla_admin_empty_or_null_oem_id_reserves_for_the_platform(
    world: World, pool: Pool, oem_id: str | None
) -> None:
    pool(1)
    (reserved,) = reservation(world, "ayla", "AY001MTP1", 1, oem_id=oem_id).devices
    assert device(world, reserved["dsn"])["reserved_by"] is None


def test_ayla_admin_unknown_oem_id_is_a_validation_failure(world: World, pool: Pool) -> None:
    pool(1)
    response = post_reserve(world, "ayla", {"model": "AY001MTP1", "count": 1, "oem_id": "ffffffff"})
    message = assert_error(response, 422, "AFS-600")
    assert message.startswith(FAILURES)


@pytest.mark.parametrize("user", ["mom", "mom2"])
def test_module_oem_manufacturer_may_not_reserve(world: World, pool: Pool, user: str) -> None:
    pool(1)
    for model in ("AY001MTP1", "AY001RTA"):
        response = post_reserve(world, user, {"model": model, "count": 1})
        assert_error(response, 403, "AFS-403")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "auth_token not-a-real-token"},
        {"Authorization": "auth_token "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_reserve_without_a_valid_token_is_401(world: World, pool: Pool, headers: dict[str, str]) -> None:
    pool(1)
    response = world.client.post(RESERVE, json={"model": "AY001MTP1", "count": 1}, headers=headers)
    assert_error(response, 401, "AFS-401")


# --- malformed bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"model": "AY001MTP1", "count": 1',
        b"model=AY001MTP1&count=1",
        b"[]",
        b'[{"model": "AY001MTP1", "count": 1}]',
        b'"AY001MTP1"',
        b"42",
        b"null",
        b"true",
        b"",
        b"\xff\xfe",
    ],
)
def test_malformed_json_or_not_an_object_is_afs_600(world: World, pool: Pool, raw: bytes) -> None:
    pool(1)
    response = world.client.post(
        RESERVE, content=raw, headers={**world.headers("mm"), "Content-Type": "application/json"}
    )
    assert_error(response, 422, "AFS-600")


# --- AFS-607 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({}, "count, model"),
        ({"model": "AY001MTP1"}, "count"),
        ({"count": 1}, "model"),
        ({"model": "", "count": None}, "count, model"),
        ({"model": None, "count": ""}, "count, model"),
        ({"model": "AY001MTP1", "count": ""}, "count"),
        ({"model": None, "count": 1}, "model"),
        ({"colour": "blue"}, "count, model"),
    ],
)
def test_missing_count_and_model_are_listed_in_order(
    world: World, pool: Pool, body: dict[str, Any], missing: str
) -> None:
    pool(1)
    assert_error(
        post_reserve(world, "mm", body), 422, "AFS-607", f"There are some missing required attrs: {missing}"
    )


@pytest.mark.parametrize(
    "body", [{"model": "XYZ"}, {"count": "abc"}, {"count": 0}, {"model": "XYZ", "count": ""}]
)
def test_missing_attrs_are_reported_before_invalid_ones(world: World, body: dict[str, Any]) -> None:
    assert_error(post_reserve(world, "mm", body), 422, "AFS-607")


# --- AFS-602 / AFS-603 --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("abc", "abc is not a valid integer number between 1 and 1000"),
        (1001, "1001 is not a valid integer number between 1 and 1000"),
        ("1001", "1001 is not a valid integer number between 1 and 1000"),
        (1.5, "1.5 is not a valid integer number between 1 and 1000"),
        (10**20, f"{10**20} is not a valid integer number between 1 and 1000"),
    ],
)
def test_count_not_an_integer_up_to_1000_is_afs_602(
    world: World, pool: Pool, count: object, message: str
) -> None:
    pool(1)
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": count}), 422, "AFS-602", message)


@pytest.mark.parametrize("count", [True, False, 2.0, "1.5", "1e2", "0x10", "--5", "5-", [1], {"n": 1}, "²"])
def test_other_non_integer_counts_are_afs_602(world: World, pool: Pool, count: object) -> None:
    pool(1)
    message = assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": count}), 422, "AFS-602")
    assert message.endswith(" is not a valid integer number between 1 and 1000")


@pytest.mark.parametrize("count", [0, -3, -1001, "0"])
def test_count_below_one_is_afs_603(world: World, pool: Pool, count: object) -> None:
    pool(1)
    assert_error(
        post_reserve(world, "mm", {"model": "AY001MTP1", "count": count}),
        422,
        "AFS-603",
        "Count should be higher or equal than 1",
    )


@pytest.mark.parametrize(("count", "code"), [("abc", "AFS-602"), (1001, "AFS-602"), (0, "AFS-603")])
def test_count_is_checked_before_the_model(world: World, count: object, code: str) -> None:
    assert_error(post_reserve(world, "mm", {"model": "XYZ", "count": count}), 422, code)
    assert_error(post_reserve(world, "mm", {"model": "AY001RTA", "count": count}), 422, code)


# --- AFS-601 ------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["mm", "som", "gateway_admin", "ayla"])
def test_unknown_model_is_afs_601(world: World, pool: Pool, user: str) -> None:
    pool(1)
    assert_error(
        post_reserve(world, user, {"model": "XYZ", "count": 1}), 422, "AFS-601", "XYZ is not a valid model"
    )


@pytest.mark.parametrize("model", [123, ["AY001MTP1"], {"name": "AY001MTP1"}, True])
def test_a_model_that_is_not_a_string_is_afs_601(world: World, pool: Pool, model: object) -> None:
    pool(1)
    message = assert_error(post_reserve(world, "mm", {"model": model, "count": 1}), 422, "AFS-601")
    assert message.endswith(" is not a valid model")


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("AY001MTP1\x00", id="nul"),
        pytest.param("AY001MTP1 ", id="trailing-space"),
        pytest.param("ay001mtp1", id="lowercase"),
        pytest.param("A" * 300, id="long"),
        pytest.param("AY001MTP1' OR '1'='1", id="quote"),
    ],
)
def test_odd_model_names_are_afs_601(world: World, pool: Pool, model: str) -> None:
    pool(1)
    message = assert_error(post_reserve(world, "mm", {"model": model, "count": 1}), 422, "AFS-601")
    assert message == f"{model} is not a valid model"


@pytest.mark.parametrize("oem_id", ["x\x00", 42, ["a"]])
def test_ayla_admin_odd_oem_id_is_a_validation_failure(world: World, pool: Pool, oem_id: object) -> None:
    pool(1)
    response = post_reserve(world, "ayla", {"model": "AY001MTP1", "count": 1, "oem_id": oem_id})
    assert_error(response, 422, "AFS-600")


def test_model_is_checked_before_the_limit_and_the_pool(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    set_reservation_limit(session_factory, world.oem_ids["modules"], 1)
    # Over the limit (5 > 1) and an empty pool: the model is still reported first.
    response = post_reserve(world, "mm", {"model": "XYZ", "count": 5})
    assert_error(response, 422, "AFS-601", "XYZ is not a valid model")
    response = post_reserve(world, "mm", {"model": "AY001RTA", "count": 5})
    assert_error(response, 422, "AFS-601", "AY001RTA is not a valid model")


# --- AFS-604 ------------------------------------------------------------------------------


def test_reserving_beyond_the_oem_limit_is_afs_604(
    world: World, pool: Pool, session_factory: sessionmaker[Session]
) -> None:
    pool(3)
    set_reservation_limit(session_factory, world.oem_ids["modules"], 2)
    # A single request above the limit.
    assert_error(
        post_reserve(world, "mm", {"model": "AY001MTP1", "count": 3}),
        422,
        "AFS-604",
        "A max of 2 devices can be reserved",
    )
    # Reaching the limit exactly is fine ...
    first, second = reservation(world, "mm", "AY001MTP1", 2).devices
    # ... one more is not, whoever of the OEM asks.
    for user in ("mm", "mm_admin"):
        assert_error(
            post_reserve(world, user, {"model": "AY001MTC2", "count": 1}),
            422,
            "AFS-604",
            "A max of 2 devices can be reserved",
        )
    # Only reserved-but-unused devices count: manufacturing one frees a place.
    mac = "0a0b0c0d0e01"
    body = {"model": "AY001MTP1", "mac": mac, "hwsig": f"sig-{mac}", "dom_at": "2016/11/24 10:34:23 UTC"}
    ok(manufacture(world, first["dsn"], body))
    (third,) = reservation(world, "mm", "AY001MTP1", 1).devices
    assert third["dsn"] not in (first["dsn"], second["dsn"])
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": 1}), 422, "AFS-604")


def test_the_limit_is_per_oem(world: World, pool: Pool, session_factory: sessionmaker[Session]) -> None:
    pool(2)
    set_reservation_limit(session_factory, world.oem_ids["modules"], 1)
    reservation(world, "mm", "AY001MTP1", 1)
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": 1}), 422, "AFS-604")
    reservation(world, "mm2", "AY001MTP1", 1)


def test_ayla_reserving_for_an_oem_counts_towards_its_limit(
    world: World, pool: Pool, session_factory: sessionmaker[Session]
) -> None:
    pool(2)
    set_reservation_limit(session_factory, world.oem_ids["gateways"], 1)
    reservation(world, "ayla", "AY001RTA", 1, oem_id=world.oem_ids["gateways"])
    assert_error(
        post_reserve(world, "som", {"model": "AY001RTA", "count": 1}),
        422,
        "AFS-604",
        "A max of 1 devices can be reserved",
    )
    assert_error(
        post_reserve(world, "ayla", {"model": "AY001RTA", "count": 1, "oem_id": world.oem_ids["gateways"]}),
        422,
        "AFS-604",
        "A max of 1 devices can be reserved",
    )
    # The platform's own reservations are not the OEM's.
    reservation(world, "ayla", "AY001RTA", 1)


def test_reservation_limit_set_through_the_admin_api(world: World, pool: Pool) -> None:
    pool(1)
    created = world.client.post(
        f"{ADMIN}/oems",
        json={
            "oem": {
                "name": "Small Modules",
                "module_manufacturer": True,
                "reservation_limit": 1,
                "certificate": factory_certificate()[0].decode(),
            }
        },
        headers=world.headers("ayla"),
    )
    assert created.status_code == 201, created.text
    oem_id = created.json()["oem"]["oem_id"]
    assert_error(
        post_reserve(world, "ayla", {"model": "AY001MTP1", "count": 2, "oem_id": oem_id}),
        422,
        "AFS-604",
        "A max of 1 devices can be reserved",
    )
    reservation(world, "ayla", "AY001MTP1", 1, oem_id=oem_id)


def test_limit_is_checked_before_the_pool(world: World, session_factory: sessionmaker[Session]) -> None:
    set_reservation_limit(session_factory, world.oem_ids["modules"], 2)
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": 3}), 422, "AFS-604")


# --- AFS-605 ------------------------------------------------------------------------------


def test_not_enough_keys_is_afs_605_and_takes_nothing(world: World, pool: Pool, settings: Settings) -> None:
    pool(2)
    assert_error(
        post_reserve(world, "mm", {"model": "AY001MTP1", "count": 3}), 422, "AFS-605", NOT_ENOUGH_KEYS
    )
    # The refused request used no key and no DSN.
    devices = reservation(world, "mm", "AY001MTP1", 2).devices
    assert [d["dsn"] for d in devices] == [format_dsn(settings.dsn_prefix, n) for n in (1, 2)]
    assert_error(
        post_reserve(world, "mm", {"model": "AY001MTP1", "count": 1}), 422, "AFS-605", NOT_ENOUGH_KEYS
    )


@pytest.mark.parametrize(("user", "model"), [("mm", "AY001MTP1"), ("som", "AY001RTA"), ("ayla", "AY001RTA")])
def test_an_empty_pool_is_afs_605(world: World, user: str, model: str) -> None:
    assert_error(post_reserve(world, user, {"model": model, "count": 1}), 422, "AFS-605", NOT_ENOUGH_KEYS)


# --- AFS-610 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "module_manufacturer", "model"),
    [
        ("OEM::ModuleManufacturer", True, "AY001MTP1"),
        ("OEM::Admin", True, "AY001MTP1"),
        ("OEM::SoftwareOEMManufacturer", False, "AY001RTA"),
        ("OEM::Admin", False, "AY001RTA"),
    ],
)
def test_reserve_for_an_oem_without_a_certificate_is_afs_610(
    world: World, pool: Pool, settings: Settings, role: str, module_manufacturer: bool, model: str
) -> None:
    pool(1)
    oem_id, headers = new_oem_user(world, role, module_manufacturer=module_manufacturer)
    response = world.client.post(RESERVE, json={"model": model, "count": 1}, headers=headers)
    message = assert_error(response, 422, "AFS-610")
    assert oem_id in message
    # Nothing was taken: once the certificate is there, the same key and first DSN are used.
    pem = factory_certificate()[0].decode()
    put = world.client.put(f"{ADMIN}/oems/{oem_id}/certificate", content=pem, headers=world.headers("ayla"))
    assert put.status_code == 200, put.text
    response = world.client.post(RESERVE, json={"model": model, "count": 1}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()[0]["device"]["dsn"] == format_dsn(settings.dsn_prefix, 1)


def test_ayla_reserving_for_an_oem_without_a_certificate_is_afs_610(world: World, pool: Pool) -> None:
    pool(1)
    oem_id, _ = new_oem_user(world, "OEM::ModuleManufacturer", module_manufacturer=True)
    response = post_reserve(world, "ayla", {"model": "AY001MTP1", "count": 1, "oem_id": oem_id})
    assert_error(response, 422, "AFS-610")
    # The platform itself needs none.
    reservation(world, "ayla", "AY001MTP1", 1)
