"""Data set-up for dashboard tests, through the API (the dashboard is what is tested)."""

from __future__ import annotations

from tests.world import World

V1 = "/devicefactory/v1"
HEAD = "2,1318462302,2016/11/24 10:34:23 UTC"


def reserve(world: World, user: str, model: str, count: int) -> tuple[int, list[str]]:
    response = world.client.post(
        f"{V1}/devices/reserve", json={"model": model, "count": count}, headers=world.headers(user)
    )
    assert response.status_code == 200, response.text
    return int(response.headers["X-Factory-Action"]), [item["device"]["dsn"] for item in response.json()]


def manufacture(world: World, user: str, dsn: str, n: int) -> None:
    response = world.client.post(
        f"{V1}/devices/{dsn}/manufacture",
        json={
            "model": "AY001MTP1",
            "mac": f"{n:012x}",
            "hwsig": f"sig-{n}",
            "dom_at": "2016/11/24 10:34:23 UTC",
            "manuf_model": "WD101a",
        },
        headers=world.headers(user),
    )
    assert response.status_code == 200, response.text


def provision_gateway(world: World, user: str, dsn: str) -> None:
    response = world.client.post(
        f"{V1}/devices/{dsn}/provision",
        json={
            "model": "AY001RTA",
            "oem_model": "zbgw",
            "oem_host_version": "1.0",
            "mac": "123456789abc",
            "manuf_model": "linux",
            "module_sw_version": "devd 1.0",
            "dom_at": "2014/06/02 16:21:10 UTC",
        },
        headers=world.headers(user),
    )
    assert response.status_code == 200, response.text


def provision_black_box(world: World, user: str, dsn: str, n: int) -> None:
    response = world.client.post(
        f"{V1}/devices/{dsn}/provision",
        json={
            "model": "AY001MTP1",
            "oem_model": "lamp",
            "oem_host_version": "2.0",
            "module_sw_version": "1.2",
        },
        headers=world.headers(user),
    )
    assert response.status_code == 200, response.text


def log_line(dsn: str, mac: str, hwsig: str) -> str:
    return f"{HEAD},label,0,AY001MTP1,{dsn},{mac},WD101a,p7,{hwsig},"
