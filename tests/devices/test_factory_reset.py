"""POST /devicefactory/v1/devices/:dsn/factory_reset (§5).

Allowed to the OEM::Admin of the OEM that owns the device and to Ayla::Admin; every
other role is refused (403); an admin of any other OEM gets 404, exactly as for an
unknown DSN. A reset reports four steps, each also recorded as a job; the device's
identity and factory data stay, its connection flag is cleared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from tests.api import (
    UNKNOWN_DSN,
    assert_error,
    device,
    job_records,
    manufacture,
    ok,
    provision,
    reserve,
)
from tests.world import World

V1 = "/devicefactory/v1/devices"
STEPS = ["reset_template", "reset_device", "unregister_device", "reset_datapoints"]
FORBIDDEN_ROLES = ["mm", "mm2", "mom", "mom2", "som", "som2"]
Pool = Callable[[int], None]


def reset(world: World, user: str, dsn: str) -> httpx2.Response:
    return world.client.post(f"{V1}/{dsn}/factory_reset", headers=world.headers(user))


@pytest.fixture
def devices(world: World, pool: Pool) -> dict[str, str]:
    """A black-box module owned by products, a gateway owned by gateways, and a
    white-box device products reserved but has not provisioned (so does not own)."""
    pool(3)
    (black,) = reserve(world, "mm", "AY001MTP1")
    ok(
        manufacture(
            world,
            black,
            {
                "model": "AY001MTP1",
                "mac": "00:11:22:33:44:55",
                "hwsig": "hw-reset-1",
                "dom_at": "2026/11/20 08:00:00 UTC",
                "manuf_model": "WD101a",
                "manuf_sn": "SN-1",
                "odm": "odm-east",
                "module_sw_version": "1.0",
                "wifi_setup_key": "KEY_1",
                "ads_connect_flag": True,
            },
        )
    )
    ok(provision(world, black, {"model": "AY001MTP1", "oem_model": "lamp", "oem_host_version": "2.0"}, "mom"))
    (gateway,) = reserve(world, "som", "AY001RTA")
    ok(
        provision(
            world,
            gateway,
            {
                "model": "AY001RTA",
                "oem_model": "gw",
                "oem_host_version": "1.0",
                "mac": "aabbccddee07",
                "manuf_model": "linux",
                "module_sw_version": "devd 1.0",
                "dom_at": "2026/11/20 08:00:00 UTC",
                "ads_connect_flag": "1",
            },
            "som",
        )
    )
    (unowned,) = reserve(world, "product_admin", "AY001RTA")
    return {"black": black, "gateway": gateway, "unowned": unowned}


def assert_reset_response(response: httpx2.Response, dsn: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"device", "steps"}, body
    assert body["device"]["dsn"] == dsn
    assert [(step["step"], step["result"]) for step in body["steps"]] == [(s, "success") for s in STEPS]
    return body


def test_the_owner_oems_admin_resets_in_four_steps(world: World, devices: dict[str, str]) -> None:
    dsn = devices["black"]
    before = device(world, dsn)
    assert before["ads_connect_flag"] is True
    jobs_before = job_records(world, dsn)

    body = assert_reset_response(reset(world, "product_admin", dsn), dsn)

    after = device(world, dsn)
    assert body["device"] == after
    # Identity and factory data are unchanged; the connection flag is cleared.
    assert after["ads_connect_flag"] in (None, False)
    assert {k: v for k, v in after.items() if k != "ads_connect_flag"} == {
        k: v for k, v in before.items() if k != "ads_connect_flag"
    }
    assert (after["dsn"], after["mac"], after["hwsig"], after["dom_at"]) == (
        dsn,
        "001122334455",
        "hw-reset-1",
        "2026-11-20T08:00:00Z",
    )
    assert after["public_key"] == before["public_key"]
    assert after["public_key"].startswith("-----BEGIN RSA PUBLIC KEY-----\n")
    assert (after["status"], after["oem"], after["reserved_by"]) == (
        "provisioned",
        world.oem_ids["products"],
        world.oem_ids["modules"],
    )
    assert after["last_job_failed"] is False

    # Each step is a job, after the device's earlier history.
    history = job_records(world, dsn)
    assert history[: len(jobs_before)] == jobs_before
    new = history[len(jobs_before) :]
    assert [(j["operation"], j["result"], j["error_code"], j["created_by"]) for j in new] == [
        (f"factory_reset:{step}", "success", None, "product_admin@example.com") for step in STEPS
    ]
    assert all(j["dsn"] == dsn and j["action_id"] is None for j in new)
    assert [j["operation"] for j in jobs_before] == ["reserve", "manufacture", "provision"]

    # The owner's users see the same history; the device stays searchable by its factory data.
    own = world.client.get(f"{V1}/{dsn}/jobs", headers=world.headers("mom"))
    assert own.json()["jobs"] == history
    found = world.client.get(V1, params={"mac": "001122334455"}, headers=world.headers("mom"))
    assert [d["dsn"] for d in found.json()["devices"]] == [dsn]
    cleared = world.client.get(V1, params={"ads_connect_flag": "yes"}, headers=world.headers("mom"))
    assert cleared.json()["devices"] == []


def test_a_reset_can_be_repeated(world: World, devices: dict[str, str]) -> None:
    dsn = devices["black"]
    first = assert_reset_response(reset(world, "product_admin", dsn), dsn)
    second = assert_reset_response(reset(world, "product_admin", dsn), dsn)
    assert second["device"] == first["device"]
    operations = [j["operation"] for j in job_records(world, dsn)]
    assert operations == ["reserve", "manufacture", "provision"] + [f"factory_reset:{s}" for s in STEPS] * 2


def test_ayla_admin_resets_any_device(world: World, devices: dict[str, str]) -> None:
    for name in ("black", "gateway"):
        dsn = devices[name]
        before = device(world, dsn)
        assert before["ads_connect_flag"] is True
        body = assert_reset_response(reset(world, "ayla", dsn), dsn)
        after = device(world, dsn)
        assert body["device"] == after
        assert after["ads_connect_flag"] in (None, False)
        assert {k: v for k, v in after.items() if k != "ads_connect_flag"} == {
            k: v for k, v in before.items() if k != "ads_connect_flag"
        }
        assert [(j["operation"], j["created_by"]) for j in job_records(world, dsn)[-4:]] == [
            (f"factory_reset:{step}", "ayla@example.com") for step in STEPS
        ]


def test_the_gateway_oems_admin_resets_its_gateway(world: World, devices: dict[str, str]) -> None:
    dsn = devices["gateway"]
    before = device(world, dsn)
    assert_reset_response(reset(world, "gateway_admin", dsn), dsn)
    after = device(world, dsn)
    assert (after["mac"], after["hwsig"], after["oem"]) == (
        "aabbccddee07",
        "mac-aabbccddee07",
        world.oem_ids["gateways"],
    )
    assert {k: v for k, v in after.items() if k != "ads_connect_flag"} == {
        k: v for k, v in before.items() if k != "ads_connect_flag"
    }


@pytest.mark.parametrize("user", FORBIDDEN_ROLES)
def test_roles_other_than_admins_are_forbidden(world: World, devices: dict[str, str], user: str) -> None:
    for dsn in (devices["black"], devices["gateway"], UNKNOWN_DSN):
        assert_error(reset(world, user, dsn), 403, "AFS-403")
    assert_unchanged(world, devices)


def test_admins_of_other_oems_get_404_like_an_unknown_dsn(world: World, devices: dict[str, str]) -> None:
    cases = [
        # The module maker that reserved and made it does not own it.
        ("mm_admin", devices["black"]),
        ("gateway_admin", devices["black"]),
        ("product_admin", devices["gateway"]),
        ("mm_admin", devices["gateway"]),
        # Reserved by products but not provisioned: products does not own it yet.
        ("product_admin", devices["unowned"]),
    ]
    for user, dsn in cases:
        response = reset(world, user, dsn)
        unknown = reset(world, user, UNKNOWN_DSN)
        assert_error(response, 404, "AFS-404")
        assert_error(unknown, 404, "AFS-404")
        assert response.json() == {
            "error": [
                {
                    **unknown.json()["error"][0],
                    "message": unknown.json()["error"][0]["message"].replace(UNKNOWN_DSN, dsn),
                }
            ]
        }
    assert_unchanged(world, devices)


def test_unauthenticated_reset_is_401(world: World, devices: dict[str, str]) -> None:
    response = world.client.post(f"{V1}/{devices['black']}/factory_reset")
    assert_error(response, 401, "AFS-401")
    assert_unchanged(world, devices)


def test_json_suffix(world: World, devices: dict[str, str]) -> None:
    dsn = devices["black"]
    response = world.client.post(f"{V1}/{dsn}/factory_reset.json", headers=world.headers("product_admin"))
    assert_reset_response(response, dsn)


def assert_unchanged(world: World, devices: dict[str, str]) -> None:
    """No refused call reset anything or left a reset job."""
    assert device(world, devices["black"])["ads_connect_flag"] is True
    assert device(world, devices["gateway"])["ads_connect_flag"] is True
    for dsn in devices.values():
        assert not any(j["operation"].startswith("factory_reset") for j in job_records(world, dsn))
