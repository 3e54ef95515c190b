"""The lifecycle funnel (SPEC §13): counts per group, the oldest wait, the tenant wall, the page."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi.testclient import TestClient

from tests.api import (
    DEVICES,
    WHITE_BOX,
    assert_error,
    manufacture,
    manufacture_body,
    ok,
    provision,
    reservation,
)
from tests.conftest import FrozenClock
from tests.dashboard.conftest import sign_in_form
from tests.world import World

FUNNEL = "/devicefactory/v1/reports/funnel"


def funnel(world: World, user: str, **params: str) -> dict[str, Any]:
    body: dict[str, Any] = ok(world.client.get(FUNNEL, params=params, headers=world.headers(user))).json()
    return body


def counts(group: dict[str, Any]) -> tuple[int, ...]:
    names = ("reserved", "manufactured", "provisioned", "verified", "retired", "waiting")
    return tuple(group[name] for name in names)


def verify_token(public_pem: str, dsn: str, now: float) -> str:
    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return base64.b64encode(key.encrypt(f"{dsn}:{int(now)}".encode(), oaep)).decode()


def build(world: World, clock: FrozenClock) -> dict[str, Any]:
    """Two black-box cohorts a day apart, and a gateway one; each stage reached by some."""
    first = reservation(world, "mm", count=4)
    clock.advance(days=1, hours=2)
    world._tokens.clear()
    second = reservation(world, "mm", "AY001MTC2", count=2)
    gateways = reservation(world, "som", "AY001RTA", count=2)
    a, b, _c, d = first.dsns
    ok(manufacture(world, a, manufacture_body(1)))
    ok(manufacture(world, b, manufacture_body(2)))
    body = {"model": "AY001MTP1", "oem_model": "plug", "oem_host_version": "1.0", "module_sw_version": "1"}
    ok(provision(world, a, body, "mom"))
    token = verify_token(first.devices[1]["public_key"], b, clock.now.timestamp())
    ok(world.client.post(f"{DEVICES}/{b}/verify", json={"token": token}, headers=world.headers("mm")))
    ok(world.client.post(f"{DEVICES}/{d}/retire", headers=world.headers("mm")))
    ok(provision(world, gateways.dsns[0], WHITE_BOX, "som"))
    return {"first": first, "second": second, "gateways": gateways}


def test_funnel_by_model_action_and_day(
    world: World, pool: Callable[[int], None], clock: FrozenClock
) -> None:
    pool(8)
    made = build(world, clock)
    first, second, gateways = made["first"], made["second"], made["gateways"]
    by_model = funnel(world, "ayla", group_by="model")
    assert by_model["group_by"] == "model"
    groups = {g["key"]: g for g in by_model["groups"]}
    assert list(groups) == ["AY001MTC2", "AY001MTP1", "AY001RTA"]
    assert counts(groups["AY001MTP1"]) == (4, 2, 1, 1, 1, 1)
    assert counts(groups["AY001MTC2"]) == (2, 0, 0, 0, 0, 2)
    assert counts(groups["AY001RTA"]) == (2, 0, 1, 0, 0, 1)
    # The oldest waiting DSN: reserved a day and two hours ago, never manufactured.
    oldest = groups["AY001MTP1"]["oldest_waiting"]
    assert oldest["dsn"] == first.dsns[2]
    assert oldest["age_seconds"] == 26 * 3600
    assert groups["AY001MTC2"]["oldest_waiting"]["dsn"] == second.dsns[0]
    assert groups["AY001MTC2"]["oldest_waiting"]["age_seconds"] == 0
    assert by_model["totals"] == {
        "reserved": 8,
        "manufactured": 2,
        "provisioned": 2,
        "verified": 1,
        "retired": 1,
        "waiting": 4,
    }
    assert by_model["oldest_waiting"]["dsn"] == first.dsns[2]
    clock.advance(hours=1)  # aging goes on with the clock
    world._tokens.clear()
    later = {g["key"]: g for g in funnel(world, "ayla", group_by="model")["groups"]}
    assert later["AY001MTP1"]["oldest_waiting"]["age_seconds"] == 27 * 3600

    by_action = {g["key"]: g for g in funnel(world, "ayla", group_by="action")["groups"]}
    assert list(by_action) == [gateways.action_id, second.action_id, first.action_id]  # newest first
    assert counts(by_action[first.action_id]) == (4, 2, 1, 1, 1, 1)

    by_day = funnel(world, "ayla", group_by="day")["groups"]
    first_day = first_reserved_day(world, first.dsns[0])
    second_day = first_reserved_day(world, second.dsns[0])
    if first_day != second_day:
        assert [g["key"] for g in by_day] == [second_day, first_day]
        assert counts(by_day[1]) == (4, 2, 1, 1, 1, 1)
    # from/to bound reserved_at, both inclusive.
    moment = first_reserved_at(world, second.dsns[0])
    since = funnel(world, "ayla", group_by="model", **{"from": moment})
    assert {g["key"] for g in since["groups"]} == {"AY001MTC2", "AY001RTA"}
    until = funnel(world, "ayla", group_by="model", to=first_reserved_at(world, first.dsns[0]))
    assert [(g["key"], g["reserved"]) for g in until["groups"]] == [("AY001MTP1", 4)]


def first_reserved_at(world: World, dsn: str) -> str:
    device = ok(world.client.get(f"{DEVICES}/{dsn}", headers=world.headers("ayla"))).json()["device"]
    return str(device["reserved_at"])


def first_reserved_day(world: World, dsn: str) -> str:
    return first_reserved_at(world, dsn)[:10]


def test_funnel_tenant_wall_and_errors(world: World, pool: Callable[[int], None], clock: FrozenClock) -> None:
    pool(8)
    build(world, clock)
    mine = {g["key"]: g for g in funnel(world, "mm", group_by="model")["groups"]}
    assert set(mine) == {"AY001MTP1", "AY001MTC2"}  # what its OEM reserved
    assert funnel(world, "mm2")["groups"] == []
    assert funnel(world, "som2")["groups"] == []
    gateways = {g["key"]: g for g in funnel(world, "som", group_by="model")["groups"]}
    assert set(gateways) == {"AY001RTA"}
    owned = funnel(world, "mom", group_by="model")["groups"]  # what it owns: one provisioned module
    assert [counts(g) for g in owned] == [(1, 1, 1, 0, 0, 0)]
    bad = world.client.get(FUNNEL, params={"group_by": "colour"}, headers=world.headers("mm"))
    assert "group_by must be one of action, model, day" in assert_error(bad, 422, "AFS-600")
    bad = world.client.get(FUNNEL, params={"from": "yesterday"}, headers=world.headers("mm"))
    assert "from yesterday is not a date" in assert_error(bad, 422, "AFS-600")
    assert_error(world.client.get(FUNNEL), 401, "AFS-401")


def test_the_dashboard_draws_the_funnel(
    world: World, pool: Callable[[int], None], clock: FrozenClock, client: TestClient
) -> None:
    pool(8)
    made = build(world, clock)
    sign_in_form(client, world.emails["mm"])
    page = client.get("/dashboard/funnel", params={"group_by": "model"})
    assert page.status_code == 200, page.text
    html = page.text
    assert 'href="/dashboard/funnel"' in html
    assert 'aria-current="page">Funnel' in html
    assert 'id="funnel-table"' in html
    assert "AY001MTP1" in html
    assert "funnel-bar stage-reserved w-100" in html  # the widest group's reserved bar
    assert "funnel-bar stage-manufactured w-50" in html
    assert made["first"].dsns[2] in html  # the oldest waiting DSN
    assert "AY001RTA" not in html  # another OEM's devices
    assert "style=" not in html.split("<main", 1)[1]  # the CSP allows no inline style
    assert client.get("/dashboard/static/funnel.css").status_code == 200
    bad = client.get("/dashboard/funnel", params={"to": "soon"})
    assert bad.status_code == 422
    assert "to soon is not a date" in bad.text
