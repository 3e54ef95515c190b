"""Retiring a reserved, never-manufactured DSN (SPEC §13, docs/lifecycle.md), through HTTP."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable

import httpx2
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.db import session_scope
from devicefactory.tables.accounts import Oem
from devicefactory.tables.devices import Device
from tests.api import (
    DEVICES,
    UNKNOWN_DSN,
    WHITE_BOX,
    action,
    assert_error,
    assert_same_as_unknown,
    device,
    file_text,
    jobs,
    last_job,
    manufacture,
    manufacture_body,
    ok,
    post_reserve,
    provision,
    reserve,
    upload,
)
from tests.world import World

RETIRED = "(its key was destroyed; it can never be manufactured, provisioned or verified)"


def retire(world: World, dsn: str, user: str = "mm") -> httpx2.Response:
    return world.client.post(f"{DEVICES}/{dsn}/retire", headers=world.headers(user))


def sealed_key(factory: sessionmaker[Session], dsn: str) -> bytes | None:
    with factory() as session:
        found = session.get(Device, dsn)
        assert found is not None
        return found.sealed_private_key


def test_a_reserved_dsn_is_retired_and_its_key_destroyed(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session]
) -> None:
    pool(2)
    dsn, kept = reserve(world, "mm", count=2)
    assert sealed_key(session_factory, dsn)
    answer = ok(retire(world, dsn)).json()["device"]
    assert answer["dsn"] == dsn
    assert answer["status"] == "retired"
    assert answer["public_key"].startswith("-----BEGIN RSA PUBLIC KEY-----")  # the public key stays
    assert sealed_key(session_factory, dsn) is None  # crypto-shredded
    assert sealed_key(session_factory, kept)  # the neighbour keeps its own
    assert jobs(world, dsn) == [("reserve", "success", None), ("retire", "success", None)]
    assert last_job(world, dsn)["message"] == "retired: its private key was destroyed"
    # Nothing is ever recorded for it again, each refusal says why (and leaves a failed job).
    token = base64.b64encode(b"x" * 256).decode()
    verified = world.client.post(
        f"{DEVICES}/{dsn}/verify", json={"token": token}, headers=world.headers("mm")
    )
    message = assert_error(verified, 422, "AFS-600")
    assert message.endswith(f"device {dsn} is retired {RETIRED}")
    assert assert_error(manufacture(world, dsn, manufacture_body(1)), 422, "AFS-600").endswith(RETIRED)
    body = {**manufacture_body(1), "oem_model": "p", "oem_host_version": "1", "module_sw_version": "1"}
    assert assert_error(provision(world, dsn, body, "ayla"), 422, "AFS-600").endswith(RETIRED)
    assert assert_error(retire(world, dsn), 422, "AFS-600").endswith(RETIRED)
    assert [op for op, result, _ in jobs(world, dsn)[2:] if result == "failure"] == [
        "verify",
        "manufacture",
        "provision",
        "retire",
    ]
    assert device(world, dsn)["status"] == "retired"
    # The DSN View shows it, and finds it by status.
    found = ok(world.client.get(DEVICES, params={"status": "retired"}, headers=world.headers("mm"))).json()
    assert [d["dsn"] for d in found["devices"]] == [dsn]
    assert found["devices"][0]["status"] == "retired"


def test_only_a_reserved_never_manufactured_dsn_is_retired(world: World, pool: Callable[[int], None]) -> None:
    pool(2)
    (made,) = reserve(world, "mm")
    ok(manufacture(world, made, manufacture_body(7)))
    assert_error(retire(world, made), 422, "AFS-606", "Device is already manufactured")
    (gateway,) = reserve(world, "som", "AY001RTA")
    ok(provision(world, gateway, WHITE_BOX, "som"))
    assert_error(retire(world, gateway, "som"), 422, "AFS-609", "Device is already provisioned")
    assert jobs(world, made)[-1] == ("retire", "failure", "AFS-606")
    assert device(world, made)["status"] == "manufactured"


def test_who_may_retire(world: World, pool: Callable[[int], None]) -> None:
    pool(6)
    black = reserve(world, "mm", count=4)
    ok(retire(world, black[0], "mm"))  # the module maker that reserved it
    ok(retire(world, black[1], "mm_admin"))  # its OEM's admin
    ok(retire(world, black[2], "ayla"))  # the platform's admin
    assert_error(retire(world, black[3], "mom"), 403, "AFS-403")  # may never manufacture
    # Another OEM's DSN reads as one that does not exist.
    assert_same_as_unknown(lambda dsn: retire(world, dsn, "mm2"), black[3])
    assert_same_as_unknown(lambda dsn: retire(world, dsn, "product_admin"), black[3])
    assert jobs(world, black[3]) == [("reserve", "success", None)]  # no trace of those calls
    white = reserve(world, "som", "AY001RTA", count=2)
    ok(retire(world, white[0], "som"))  # a gateway maker retires what it reserved
    ok(retire(world, white[1], "gateway_admin"))
    assert_error(retire(world, UNKNOWN_DSN, "ayla"), 404, "AFS-404")


def test_a_retired_dsn_frees_the_limit_and_is_never_issued_again(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session]
) -> None:
    pool(4)
    with session_scope(session_factory) as session:
        session.execute(update(Oem).where(Oem.oem_id == world.oem_ids["modules"]).values(reservation_limit=2))
    first = reserve(world, "mm", count=2)
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": 1}), 422, "AFS-604")
    ok(retire(world, first[0]))
    (again,) = reserve(world, "mm")
    assert again not in first
    assert again > max(first)  # DSNs come from a counter: a retired one is never handed out
    assert device(world, first[0])["status"] == "retired"


def _lines(world: World, user: str, action_id: int) -> list[tuple[str, str, str, str]]:
    rows = csv.DictReader(io.StringIO(file_text(world, user, action_id, "csv")))
    return [(r["dsn"], r["status"], r["result"], r["error_code"]) for r in rows]


def test_retire_by_upload_validate_equals_submit(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(5)
    good, twice, made, other = reserve(world, "mm", count=4)
    ok(manufacture(world, made, manufacture_body(3)))
    (foreign,) = reserve(world, "mm2")
    lines = [
        "# spares from line 7",
        good,
        "",
        f"{twice}   # a comment after the DSN",
        twice,
        made,
        foreign,
        UNKNOWN_DSN,
        "AC000W000000001,extra",
    ]
    checked = upload(world, "mm", lines, type_="retire", validate=True, name="spares.txt")
    run_actions()
    validated = action(world, "mm", checked["id"])["factory_action"]
    assert validated["status"] == "failure"
    assert device(world, good)["status"] == "reserved"  # validate changes nothing
    submitted = upload(world, "mm", lines, type_="retire", name="spares.txt")
    assert submitted["type"] == "retire"
    run_actions()
    done = action(world, "mm", submitted["id"])["factory_action"]
    assert done["upload"]["format"] == "dsns"
    expected = [
        (good, "retired", "applied", ""),
        (twice, "retired", "applied", ""),
        (twice, "retired", "identical", ""),
        (made, "manufactured", "invalid", "AFS-606"),
        (foreign, "", "invalid", "AFS-404"),
        (UNKNOWN_DSN, "", "invalid", "AFS-404"),
    ]
    submitted_lines = _lines(world, "mm", submitted["id"])
    assert submitted_lines[:6] == expected
    validate_lines = _lines(world, "mm", checked["id"])
    validate_expected = [
        (dsn, "reserved" if status == "retired" else status, "would apply" if r == "applied" else r, code)
        for dsn, status, r, code in expected
    ]
    assert validate_lines[:6] == validate_expected
    assert {k: v for k, v in validated["progress"].items() if k != "would_apply"} == {
        k: v for k, v in done["progress"].items() if k != "applied"
    }
    assert validated["progress"]["would_apply"] == done["progress"]["applied"] == 2
    assert done["progress"]["invalid"] == 4
    assert device(world, good)["status"] == device(world, twice)["status"] == "retired"
    assert device(world, other)["status"] == "reserved"
    assert jobs(world, good)[-1] == ("retire", "success", None)
    assert device(world, foreign)["status"] == "reserved"
    failed = file_text(world, "mm", submitted["id"], "failed")
    assert failed.splitlines() == [made, foreign, UNKNOWN_DSN, "AC000W000000001,extra"]


def test_retire_by_csv_upload_and_roles(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(2)
    dsns = reserve(world, "mm", count=2)
    submitted = upload(world, "mm", ["dsn", *dsns], type_="retire", name="spares.csv")
    run_actions()
    done = action(world, "mm", submitted["id"])["factory_action"]
    assert done["upload"]["format"] == "csv"
    assert done["status"] == "success"
    assert [device(world, dsn)["status"] for dsn in dsns] == ["retired", "retired"]
    refused = world.client.post(
        "/devicefactory/v1/factory_actions",
        files={"file": ("x.txt", b"AC000W000000001\n", "text/plain")},
        data={"type": "retire"},
        headers=world.headers("mom"),
    )
    assert_error(refused, 403, "AFS-403")
