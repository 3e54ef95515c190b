"""Requests built to break parsers get the AFS error they should, never a 500."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api import ACTIONS, DEVICES, action, assert_error, file_text, log_line, reserve, upload
from tests.world import World


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/users/sign_in.json", b'{"user": {"email": "mm@example.com", "password": "\\ud800"}}'),
        ("/users/sign_in.json", b'{"user": {"email": "\\udfff@example.com", "password": "x"}}'),
        (f"{DEVICES}/AC000W000000001/manufacture", b'{"model": "AY001MTP1", "manuf_sn": "\\uDBFF"}'),
    ],
)
def test_lone_surrogates_are_malformed_json(world: World, path: str, body: bytes) -> None:
    response = world.client.post(
        path, content=body, headers={**world.headers("mm"), "Content-Type": "application/json"}
    )
    assert_error(response, 422, "AFS-600")


def test_deeply_nested_json_is_malformed_not_a_crash(world: World) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    response = world.client.post(
        "/users/sign_in.json", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "AFS-600")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (DEVICES, {"reserved_after": "0001-01-01T00:00:00+01:00"}),
        (ACTIONS, {"from": "9999-12-31T23:59:59-01:00"}),
        (ACTIONS, {"cursor": "-100000000000000000000"}),
    ],
)
def test_out_of_range_values_are_not_a_crash(world: World, path: str, params: dict[str, str]) -> None:
    response = world.client.get(path, params=params, headers=world.headers("mm"))
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert_error(response, 422, "AFS-600")


def test_a_huge_reservation_limit_is_refused(world: World) -> None:
    response = world.client.post(
        "/devicefactory/v1/admin/oems",
        json={"name": "Big", "reservation_limit": 2**70},
        headers=world.headers("ayla"),
    )
    assert_error(response, 422, "AFS-600")


def test_an_upload_naming_other_oems_devices_shows_none_of_them(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    """An upload may name any DSN; its action detail lists only the devices the caller may see."""
    pool(2)
    theirs = reserve(world, "mm", count=1)[0]
    mine = reserve(world, "mm2", count=1)[0]
    made = upload(
        world,
        "mm2",
        [log_line(theirs, "aa0000000001", "x1"), log_line(mine, "aa0000000002", "x2")],
        validate=True,
    )
    run_actions()
    body = action(world, "mm2", made["id"])
    assert [device["dsn"] for device in body["devices"]] == [mine]
    searched = world.client.get(DEVICES, params={"action_id": str(made["id"])}, headers=world.headers("mm"))
    assert searched.json()["devices"] == []  # another OEM's action names nothing for mm


def test_an_over_long_dsn_in_a_log_line_is_one_invalid_line(
    world: World, run_actions: Callable[[], int]
) -> None:
    long_dsn = "AC000W" + "9" * 150
    made = upload(world, "mm", [log_line(long_dsn, "aa0000000003", "x3")])
    run_actions()
    result = action(world, "mm", made["id"])["factory_action"]
    assert result["status"] == "failure"
    assert result["progress"]["invalid"] == 1
    assert "AFS-404" in file_text(world, "mm", made["id"], "log")
