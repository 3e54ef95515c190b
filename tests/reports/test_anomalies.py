"""The anomalies report (SPEC §13): each anomaly built through the real API and uploads,
its evidence, the tenant wall, roles, paging, and the dashboard page."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from tests.api import (
    assert_error,
    log_line,
    manufacture,
    manufacture_body,
    ok,
    reserve,
    upload,
)
from tests.conftest import FrozenClock
from tests.dashboard.conftest import sign_in_form
from tests.world import PASSWORD, USERS, World, sign_in

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor, Role
from devicefactory.db import session_scope
from devicefactory.keys.crypto import encrypt_verify_token
from devicefactory.reports.anomalies import may_read_anomalies
from devicefactory.reports.evidence import changes_of, mismatches, taken_fields, verify_kind

REPORT = "/devicefactory/v1/reports/anomalies"
Pool = Callable[[int], None]
Runner = Callable[[], int]


def report(world: World, user: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = ok(world.client.get(REPORT, params=params, headers=world.headers(user))).json()
    return body


def items(world: World, user: str, name: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = report(world, user, **params)[name]["items"]
    return found


def token(public_key: str, dsn: str, clock: FrozenClock) -> str:
    message = f"{dsn}:{int(clock.now.timestamp())}".encode()
    return base64.b64encode(encrypt_verify_token(public_key, message)).decode()


@pytest.fixture
def taken(world: World, pool: Pool, run_actions: Runner) -> dict[str, Any]:
    """modules: A holds mac 1; B's API call and C's upload line claim it; modules2's D claims it too."""
    pool(4)
    a, b, c = reserve(world, "mm", count=3)
    (d,) = reserve(world, "mm2")
    ok(manufacture(world, a, manufacture_body(1)))
    refused = manufacture(world, b, {**manufacture_body(2), "mac": manufacture_body(1)["mac"]})
    assert_error(refused, 422, "AFS-600")
    action = upload(world, "mm", ["# a factory log", log_line(c, "00:00:00:00:00:01", "sig-3")])
    other = upload(world, "mm2", [log_line(d, "000000000001", "sig-1")])
    assert run_actions() == 2
    return {"a": a, "b": b, "c": c, "d": d, "action": action["id"], "other": other["id"]}


def test_a_mac_claimed_by_more_than_one_dsn_with_its_evidence(world: World, taken: dict[str, Any]) -> None:
    line, call = items(world, "mm", "shared_identifiers")
    # The upload line: the value read back from the line, the holder named, the job kept.
    assert line["dsn"] == taken["c"]
    assert line["identifiers"] == [{"field": "mac", "value": "000000000001", "held_by": taken["a"]}]
    assert line["dsns"] == [taken["c"], taken["a"]]
    evidence = line["evidence"]
    assert (evidence["source"], evidence["action_id"], evidence["line_no"]) == ("upload", taken["action"], 2)
    assert evidence["outcome"] == "invalid"
    assert len(evidence["job_ids"]) == 1
    assert evidence["created_by"] == world.emails["mm"]
    assert evidence["oem_id"] == world.oem_ids["modules"]
    assert "mac is already taken" in evidence["message"]
    # The API call: its job keeps the value it claimed, so the holder is named too.
    assert call["dsn"] == taken["b"]
    assert call["identifiers"] == [{"field": "mac", "value": "000000000001", "held_by": taken["a"]}]
    assert call["dsns"] == [taken["b"], taken["a"]]
    assert call["evidence"]["source"] == "api"
    assert call["evidence"]["action_id"] is None
    assert len(call["evidence"]["job_ids"]) == 1
    assert call["evidence"]["at"].endswith("Z")


def test_the_tenant_wall(world: World, taken: dict[str, Any]) -> None:
    # modules2 sees its own refused line, but not the DSN of the device that holds the mac.
    (own,) = items(world, "mm2", "shared_identifiers")
    assert own["dsn"] == taken["d"]
    assert own["identifiers"][0]["held_by"] is None
    assert own["dsns"] == [taken["d"]]
    assert own["evidence"]["action_id"] == taken["other"]
    # modules never sees modules2's claim; OEMs that touched nothing see nothing.
    assert taken["d"] not in {item["dsn"] for item in items(world, "mm", "shared_identifiers")}
    assert taken["d"] not in str(report(world, "mm_admin"))
    for user in ("mom", "product_admin", "som", "gateway_admin"):
        answer = report(world, user)
        assert all(answer[name]["items"] == [] for name in answer), user
    # Ayla::Admin sees all three claims.
    assert {item["dsn"] for item in items(world, "ayla", "shared_identifiers")} == {
        taken["b"],
        taken["c"],
        taken["d"],
    }


def test_conflicting_manufacture_claims(world: World, taken: dict[str, Any], run_actions: Runner) -> None:
    a = taken["a"]
    again = manufacture(world, a, manufacture_body(9))
    assert_error(again, 422, "AFS-606")
    action = upload(world, "mm", [log_line(a, "0000000000aa", "sig-1")])
    run_actions()
    line, call = items(world, "mm", "conflicting_claims")
    assert line["dsn"] == a
    assert line["operation"] == "manufacture"
    assert {"field": "mac", "original": "000000000001", "claimed": "0000000000aa"} in line["changes"]
    assert line["evidence"]["outcome"] == "conflict"
    assert (line["evidence"]["action_id"], line["evidence"]["line_no"]) == (action["id"], 1)
    assert line["current"]["mac"] == "000000000001"
    assert call["evidence"]["error_code"] == "AFS-606"
    assert call["changes"] == []
    assert call["current"]["hwsig"] == "sig-1"
    assert items(world, "mm2", "conflicting_claims") == []


def test_refused_verifies_wrong_key_and_replay(world: World, pool: Pool, clock: FrozenClock) -> None:
    pool(2)
    response = ok(
        world.client.post(
            "/devicefactory/v1/devices/reserve",
            json={"model": "AY001MTP1", "count": 2},
            headers=world.headers("mm"),
        )
    )
    first, second = (item["device"] for item in response.json())
    url = f"/devicefactory/v1/devices/{first['dsn']}/verify"
    # A cloned module: the other device's key, this DSN.
    cloned = {"token": token(second["public_key"], first["dsn"], clock)}
    assert_error(world.client.post(url, json=cloned, headers=world.headers("mm")), 422, "AFS-600")
    good = {"token": token(first["public_key"], first["dsn"], clock)}
    ok(world.client.post(url, json=good, headers=world.headers("mm")))
    assert_error(world.client.post(url, json=good, headers=world.headers("mm")), 422, "AFS-600")
    replay, wrong = items(world, "mm", "failed_verifies")
    assert (replay["dsn"], replay["kind"]) == (first["dsn"], "replay")
    assert (wrong["dsn"], wrong["kind"]) == (first["dsn"], "wrong_key")
    assert wrong["created_by"] == world.emails["mm"]
    assert wrong["oem_id"] == world.oem_ids["modules"]
    assert wrong["error_code"] == "AFS-600"
    assert replay["job_id"] > wrong["job_id"]
    assert items(world, "mm2", "failed_verifies") == []
    assert len(items(world, "ayla", "failed_verifies")) == 2


def test_pages_of_one_list(world: World, taken: dict[str, Any]) -> None:
    seen: list[tuple[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 1, "only": "identifiers"}
        if cursor:
            params["identifiers_cursor"] = cursor
        answer = report(world, "ayla", **params)
        assert answer["conflicting_claims"] is None
        assert answer["failed_verifies"] is None
        page = answer["shared_identifiers"]
        assert len(page["items"]) <= 1
        seen += [(item["dsn"], item["evidence"]["job_ids"]) for item in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert pages < 10
    assert sorted(dsn for dsn, _ in seen) == sorted([taken["b"], taken["c"], taken["d"]])
    assert len({str(s) for s in seen}) == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit must be an integer between 1 and 200"),
        ({"limit": "abc"}, "limit must be an integer between 1 and 200"),
        ({"only": "everything"}, "only must be one of identifiers, conflicts, verifies"),
        ({"verifies_cursor": "nonsense"}, "verifies_cursor is not a cursor of this list"),
        ({"conflicts_cursor": "eyJsIjoxfQ"}, "conflicts_cursor is not a cursor of this list"),
    ],
)
def test_bad_parameters(world: World, params: dict[str, str], message: str) -> None:
    response = world.client.get(REPORT, params=params, headers=world.headers("ayla"))
    assert_error(response, 422, "AFS-600", f"There were some failures while processing: {message}")


def test_roles(world: World, session_factory: sessionmaker[Session]) -> None:
    assert_error(world.client.get(REPORT), 401, "AFS-401")
    for user in USERS:
        ok(world.client.get(REPORT, headers=world.headers(user)))
    # A read-only role does not read it (docs/anomalies.md).
    viewer = Role("OEM::Viewer")
    with session_scope(session_factory) as session:
        accounts.create_user(
            session,
            None,
            email="viewer@example.com",
            password=PASSWORD,
            role=viewer,
            oem_id=world.oem_ids["modules"],
        )
    headers = {"Authorization": f"auth_token {sign_in(world.client, 'viewer@example.com')['access_token']}"}
    assert_error(world.client.get(REPORT, headers=headers), 403, "AFS-403")
    for role in Role:
        actor = Actor(1, "x@example.com", role, None if role is Role.AYLA_ADMIN else "0000abcd")
        assert may_read_anomalies(actor) is (role is not viewer)


def test_openapi_documents_the_report(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][REPORT]["get"]
    assert "AnomalyReport" in str(operation["responses"]["200"])
    assert {"SharedIdentifier", "ConflictingClaim", "FailedVerify"} <= set(schema["components"]["schemas"])


def test_the_dashboard_page(app: Any, world: World, taken: dict[str, Any]) -> None:
    with TestClient(app) as browser:
        assert sign_in_form(browser, world.emails["ayla"]).status_code == 303
        page = browser.get("/dashboard/anomalies")
        assert page.status_code == 200, page.text
        assert "Anomalies" in page.text
        assert taken["c"] in page.text
        assert f"/dashboard/actions/{taken['action']}" in page.text
        assert 'href="/dashboard/anomalies"' in page.text
        one = browser.get("/dashboard/anomalies", params={"only": "verifies"})
        assert one.status_code == 200
        assert "identifiers-table" not in one.text


def test_reading_refusals_back() -> None:
    assert taken_fields(
        "There were some failures while processing: mac is already taken, hwsig is already taken"
    ) == [
        "mac",
        "hwsig",
    ]
    assert taken_fields("There were some failures while processing: mac or hwsig is already taken") == [
        "mac or hwsig"
    ]
    assert changes_of("mac: 000000000001 -> 0000000000aa; manuf_sn: (none) -> p7") == [
        ("mac", "000000000001", "0000000000aa"),
        ("manuf_sn", None, "p7"),
    ]
    message = (
        "There were some failures while processing: mac does not match the manufactured value 0a, hwsig is x"
    )
    assert mismatches(message) == [("mac", "0a")]
    assert verify_kind("... token does not decrypt with this device's key") == "wrong_key"
    assert verify_kind(None) == "other"
