"""The black-box and white-box flows end to end through HTTP (§1, §4)."""

from __future__ import annotations

from collections.abc import Callable

from tests.api import WHITE_BOX, provision, reservation
from tests.world import World

V1 = "/devicefactory/v1/devices"


def test_black_box_flow(world: World, pool: Callable[[int], None]) -> None:
    pool(3)
    devices = reservation(world, "mm", "AY001MTP1", 2).devices
    assert [d["dsn"] for d in devices] == ["AC000W000000001", "AC000W000000002"]
    assert all(d["public_key"].startswith("-----BEGIN RSA PUBLIC KEY-----\n") for d in devices)
    dsn = devices[0]["dsn"]
    made = world.client.post(
        f"{V1}/{dsn}/manufacture.json",
        json={
            "model": "AY001MTP1",
            "mac": "1D:EE:6E:A2:06:AC",
            "hwsig": "hwsig_5NU41",
            "dom_at": "2016/11/24 10:34:23 UTC",
            "manuf_model": "mfg_model_HdsbL",
        },
        headers=world.headers("mm"),
    )
    assert made.status_code == 200, made.text
    assert made.json() == {
        "device": {
            "dsn": dsn,
            "model": "AY001MTP1",
            "mac": "1dee6ea206ac",
            "hwsig": "hwsig_5NU41",
            "odm": None,
            "manuf_model": "mfg_model_HdsbL",
            "manuf_sn": None,
            "module_sw_version": None,
            "oem_host_version": None,
            "wifi_setup_key": None,
            "ads_connect_flag": None,
            "dom_at": "2016-11-24T10:34:23Z",
        }
    }
    provisioned = provision(
        world,
        dsn,
        {
            "model": "AY001MTP1",
            "oem_model": "UniqueModelName123",
            "oem_host_version": "2.0",
            "module_sw_version": "hwsig_5NU41",
            "mac": "1dee6ea206ac",
        },
        "mom",
    )
    assert provisioned.status_code == 200, provisioned.text
    body = provisioned.json()["device"]
    assert body["oem"] == world.oem_ids["products"]
    assert body["oem_model"] == "UniqueModelName123"
    assert body["oem_host_version"] == "2.0"
    assert body["mac"] == "1dee6ea206ac"
    # The product OEM now sees its device; the module maker still sees what it reserved.
    assert world.client.get(f"{V1}/{dsn}", headers=world.headers("mom")).status_code == 200
    assert world.client.get(f"{V1}/{dsn}", headers=world.headers("mm")).status_code == 200
    assert world.client.get(f"{V1}/{dsn}", headers=world.headers("mom2")).status_code == 404
    jobs = world.client.get(f"{V1}/{dsn}/jobs", headers=world.headers("mom")).json()["jobs"]
    assert [(j["operation"], j["result"]) for j in jobs] == [
        ("reserve", "success"),
        ("manufacture", "success"),
        ("provision", "success"),
    ]


def test_white_box_flow(world: World, pool: Callable[[int], None]) -> None:
    pool(1)
    (device,) = reservation(world, "som", "AY001RTA", 1).devices
    dsn = device["dsn"]
    provisioned = provision(world, dsn, WHITE_BOX, "som")
    assert provisioned.status_code == 200, provisioned.text
    body = provisioned.json()["device"]
    assert body["hwsig"] == "mac-123456789abc"
    assert body["oem"] == world.oem_ids["gateways"]
    assert world.client.get(f"{V1}/{dsn}", headers=world.headers("som2")).status_code == 404
