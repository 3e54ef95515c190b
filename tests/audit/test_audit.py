"""The audit log (SPEC §13): every change and download is a chain entry, written in the
change's own transaction; admins read their OEM's entries (Ayla::Admin every entry) as
JSON pages and CSV; ``devicefactory audit verify`` names the first entry changed,
removed or inserted."""

from __future__ import annotations

import base64
import csv
import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker
from tests.api import (
    ACTIONS,
    DEVICES,
    V1,
    assert_error,
    log_line,
    manufacture,
    manufacture_body,
    ok,
    post_reserve,
    provision,
    reservation,
    upload,
)
from tests.conftest import FrozenClock
from tests.dashboard.conftest import Dash, sign_in_form
from tests.world import PASSWORD, World, factory_certificate

from devicefactory.audit_chain import ZERO_HASH, EntryFields, append, chain_hash, fields_of, verify
from devicefactory.db import session_scope
from devicefactory.keys.crypto import encrypt_verify_token
from devicefactory.tables.audit import AuditEntry, AuditHead

AUDIT = f"{V1}/audit"
Pool = Callable[[int], None]
OTHER_ROLES = ["mm", "mom", "som"]


def entries(factory: sessionmaker[Session]) -> list[AuditEntry]:
    with factory() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def whats(factory: sessionmaker[Session]) -> list[str]:
    return [entry.what for entry in entries(factory)]


def read(world: World, who: str, **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = ok(world.client.get(AUDIT, params=params, headers=world.headers(who))).json()
    return body


def post(world: World, user: str, path: str, body: Any, **headers: str) -> httpx2.Response:
    return world.client.post(path, json=body, headers={**world.headers(user), **headers})


@pytest.fixture
def dash(app: FastAPI, world: World) -> Iterator[Callable[[str], Dash]]:
    """``dash("mm")``: a client signed in to the dashboard as that world user."""
    clients: list[TestClient] = []

    def open_as(user: str) -> Dash:
        client = TestClient(app)
        clients.append(client)
        assert sign_in_form(client, world.emails[user]).status_code == 303
        return Dash(client, user, world.emails[user])

    yield open_as
    for client in clients:
        client.close()


# --- recording --------------------------------------------------------------------------------


def test_each_device_change_is_an_entry_with_who_where_and_what(
    world: World, pool: Pool, session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    pool(2)
    response = post(
        world, "mm", f"{DEVICES}/reserve", {"model": "AY001MTP1", "count": 1}, **{"X-Request-Id": "rq-1"}
    )
    reserved = ok(response).json()[0]["device"]
    dsn = reserved["dsn"]
    action_id = int(response.headers["X-Factory-Action"])
    ok(manufacture(world, dsn, {**manufacture_body(1), "module_sw_version": "1.0"}))
    ok(provision(world, dsn, {"model": "AY001MTP1", "oem_model": "lamp", "oem_host_version": "2.0"}, "mom"))
    message = f"{dsn}:{int(clock.now.timestamp())}".encode()
    proof = base64.b64encode(encrypt_verify_token(reserved["public_key"], message)).decode()
    ok(post(world, "mm", f"{DEVICES}/{dsn}/verify", {"token": proof}))
    ok(world.client.post(f"{DEVICES}/{dsn}/factory_reset", headers=world.headers("product_admin")))

    made = entries(session_factory)
    assert [e.what for e in made] == [
        "devices.reserve",
        "devices.manufacture",
        "devices.provision",
        "devices.verify",
        "devices.factory_reset",
    ]
    reserve_entry = made[0]
    assert reserve_entry.user_email == world.emails["mm"]
    assert reserve_entry.oem_id == world.oem_ids["modules"]
    assert reserve_entry.client == "testclient"
    assert reserve_entry.request_id == "rq-1"
    assert reserve_entry.action_id == action_id
    assert reserve_entry.dsn == dsn
    assert reserve_entry.at == clock.now
    assert reserve_entry.previous_hash == ZERO_HASH
    assert all(e.dsn == dsn for e in made)
    assert made[2].oem_id == world.oem_ids["products"]
    assert [e.previous_hash for e in made[1:]] == [e.entry_hash for e in made[:-1]]
    assert all(e.request_id for e in made)  # generated when the client sends none
    with session_factory() as session:
        assert verify(session).intact


def test_uploads_admin_creates_and_webhooks_are_entries(
    world: World, pool: Pool, session_factory: sessionmaker[Session]
) -> None:
    pool(1)
    (reserved,) = reservation(world, "mm").devices
    before = len(entries(session_factory))
    action = upload(world, "mm", [log_line(reserved["dsn"], "0011223344ee", "sig-up")])
    certificate = factory_certificate()[0].decode()
    oem = post(world, "ayla", f"{V1}/admin/oems", {"oem": {"name": "Audited", "module_manufacturer": False}})
    oem_id = oem.json()["oem"]["oem_id"]
    assert oem.status_code == 201, oem.text
    user = post(
        world,
        "product_admin",
        f"{V1}/admin/users",
        {"user": {"email": "new@example.com", "password": PASSWORD, "role": "OEM::ModuleOEMManufacturer"}},
    )
    assert user.status_code == 201, user.text
    model = post(world, "ayla", f"{V1}/admin/models", {"model": {"name": "AY009", "kind": "black_box"}})
    assert model.status_code == 201, model.text
    cert = world.client.put(
        f"{V1}/admin/oems/{oem_id}/certificate",
        content=certificate,
        headers={**world.headers("ayla"), "Content-Type": "application/x-pem-file"},
    )
    ok(cert)
    hook = post(
        world,
        "mm_admin",
        f"{V1}/webhooks",
        {"url": "https://example.com/hook", "events": ["action.finished"], "secret": "s3cret-s3cret-s3cret"},
    )
    assert hook.status_code == 201, hook.text
    hook_id = hook.json()["webhook"]["id"]
    gone = world.client.delete(f"{V1}/webhooks/{hook_id}", headers=world.headers("mm_admin"))
    assert gone.status_code == 204, gone.text

    made = entries(session_factory)[before:]
    assert [e.what for e in made] == [
        "factory_actions.create",
        "admin.oems.create",
        "admin.users.create",
        "admin.models.create",
        "admin.oems.certificate",
        "webhooks.create",
        "webhooks.delete",
    ]
    by_what = {e.what: e for e in made}
    assert by_what["factory_actions.create"].action_id == action["id"]
    assert '"type":"manufacture"' in by_what["factory_actions.create"].object
    assert oem_id in by_what["admin.oems.create"].object
    assert '"email":"new@example.com"' in by_what["admin.users.create"].object
    assert by_what["admin.users.create"].oem_id == world.oem_ids["products"]
    assert by_what["admin.oems.create"].oem_id is None  # Ayla::Admin belongs to no OEM
    assert '"name":"AY009"' in by_what["admin.models.create"].object
    assert f'"oem_id":"{oem_id}"' in by_what["admin.oems.certificate"].object
    assert str(hook_id) in by_what["webhooks.create"].object
    assert str(hook_id) in by_what["webhooks.delete"].object


def test_refused_calls_write_no_entry_and_entries_count_the_changes(
    world: World, pool: Pool, session_factory: sessionmaker[Session]
) -> None:
    pool(1)
    (dsn,) = reservation(world, "mm").dsns
    # Refused: a missing attribute (its failed job is committed, but nothing changed), a
    # role that may not, a DSN out of reach, a bad count, and a 401.
    assert_error(manufacture(world, dsn, {"model": "AY001MTP1"}), 422, "AFS-607")
    assert_error(post_reserve(world, "mom", {"model": "AY001MTP1", "count": 1}), 403, "AFS-403")
    assert_error(manufacture(world, dsn, manufacture_body(2), user="mm2"), 404, "AFS-404")
    assert_error(post_reserve(world, "mm", {"model": "AY001MTP1", "count": "x"}), 422, "AFS-602")
    assert world.client.post(f"{DEVICES}/reserve", json={}).status_code == 401
    assert whats(session_factory) == ["devices.reserve"]
    ok(manufacture(world, dsn, manufacture_body(2)))
    assert whats(session_factory) == ["devices.reserve", "devices.manufacture"]


def test_sign_in_refresh_and_sign_out_are_not_audited(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    tokens = ok(
        world.client.post(
            "/users/sign_in", json={"user": {"email": world.emails["mm"], "password": PASSWORD}}
        )
    ).json()
    renewed = ok(
        world.client.post("/users/refresh_token", json={"user": {"refresh_token": tokens["refresh_token"]}})
    ).json()
    ok(world.client.post("/users/sign_out", json={"user": {"access_token": renewed["access_token"]}}))
    assert entries(session_factory) == []


def test_an_idempotent_replay_writes_no_second_entry(
    world: World, pool: Pool, session_factory: sessionmaker[Session]
) -> None:
    pool(2)
    body = {"model": "AY001MTP1", "count": 1}
    first = post(world, "mm", f"{DEVICES}/reserve", body, **{"Idempotency-Key": "k-1"})
    again = post(world, "mm", f"{DEVICES}/reserve", body, **{"Idempotency-Key": "k-1"})
    assert ok(first).json() == ok(again).json()
    assert whats(session_factory) == ["devices.reserve"]


def test_downloads_are_entries_written_before_the_file_is_sent(
    world: World, pool: Pool, session_factory: sessionmaker[Session], dash: Any
) -> None:
    pool(1)
    action_id = reservation(world, "mm").action_id
    ok(world.client.get(f"{ACTIONS}/{action_id}/files/csv", headers=world.headers("mm")))
    ok(world.client.get(f"{ACTIONS}/{action_id}/files/xml", headers=world.headers("mm")))
    assert (
        world.client.get(f"{ACTIONS}/{action_id}/files/csv", headers=world.headers("mm2")).status_code == 404
    )
    assert (
        world.client.get(f"{ACTIONS}/{action_id}/files/nope", headers=world.headers("mm")).status_code == 404
    )
    page = dash("mm")
    assert page.get(f"/dashboard/actions/{action_id}/files/log").status_code == 200
    downloads = [e for e in entries(session_factory) if e.what == "factory_actions.download"]
    assert [(e.action_id, e.object, e.user_email) for e in downloads] == [
        (action_id, '{"kind":"csv"}', world.emails["mm"]),
        (action_id, '{"kind":"xml"}', world.emails["mm"]),
        (action_id, '{"kind":"log"}', world.emails["mm"]),
    ]


def test_dashboard_changes_are_entries(
    world: World, pool: Pool, session_factory: sessionmaker[Session], dash: Any
) -> None:
    pool(1)
    page = dash("mm")
    response = page.post("/dashboard/actions/reserve", {"model": "AY001MTP1", "count": "1"})
    assert response.status_code == 303, response.text
    action_id = int(response.headers["location"].rsplit("done=", 1)[1])
    refused = page.post("/dashboard/actions/reserve", {"model": "NOPE", "count": "1"})
    assert refused.status_code == 422
    (entry,) = [e for e in entries(session_factory) if e.what.startswith("dashboard.")]
    assert (entry.what, entry.action_id, entry.user_email) == (
        "dashboard.reserve",
        action_id,
        world.emails["mm"],
    )
    assert entry.oem_id == world.oem_ids["modules"]


# --- reading: roles, tenant wall, filters, CSV ---------------------------------------------------


@pytest.fixture
def history(world: World, pool: Pool, clock: FrozenClock) -> dict[str, str]:
    """Changes by two OEMs on two days: modules reserves and manufactures, gateways reserves."""
    pool(3)
    clock.start_timeline()
    world._tokens.clear()
    (black,) = reservation(world, "mm").dsns
    ok(manufacture(world, black, manufacture_body(7)))
    clock.advance(days=1)
    world._tokens.clear()
    (gateway,) = reservation(world, "som", "AY001RTA").dsns
    (other,) = reservation(world, "mm_admin").dsns
    return {"black": black, "gateway": gateway, "other": other}


def test_oem_admins_see_their_oems_entries_only_and_ayla_sees_all(
    world: World, history: dict[str, str]
) -> None:
    modules = read(world, "mm_admin")["entries"]
    assert [e["what"] for e in modules] == ["devices.reserve", "devices.manufacture", "devices.reserve"]
    assert {e["oem_id"] for e in modules} == {world.oem_ids["modules"]}
    gateways = read(world, "gateway_admin")["entries"]
    assert [(e["what"], e["dsn"]) for e in gateways] == [("devices.reserve", history["gateway"])]
    assert read(world, "product_admin")["entries"] == []
    everything = read(world, "ayla")
    assert len(everything["entries"]) == 4
    assert everything["next_cursor"] is None
    assert [e["id"] for e in everything["entries"]] == sorted(
        (e["id"] for e in everything["entries"]), reverse=True
    )
    first = everything["entries"][-1]
    assert set(first) == {
        "id", "at", "user_id", "user_email", "oem_id", "client", "request_id",
        "what", "dsn", "action_id", "object", "previous_hash", "entry_hash",
    }  # fmt: skip
    # A filter never opens the wall: modules' admin asking for gateways' DSN finds nothing.
    assert read(world, "mm_admin", dsn=history["gateway"])["entries"] == []


@pytest.mark.parametrize("user", OTHER_ROLES)
def test_other_roles_are_forbidden(world: World, user: str) -> None:
    assert_error(world.client.get(AUDIT, headers=world.headers(user)), 403, "AFS-403")
    assert_error(world.client.get(f"{AUDIT}.csv", headers=world.headers(user)), 403, "AFS-403")
    assert world.client.get(AUDIT).status_code == 401


def test_filters_and_pages(world: World, history: dict[str, str], clock: FrozenClock) -> None:
    day0 = clock.now.date() - timedelta(days=1)
    assert len(read(world, "ayla", **{"from": day0.isoformat(), "to": day0.isoformat()})["entries"]) == 2
    assert len(read(world, "ayla", **{"from": (day0 + timedelta(days=1)).isoformat()})["entries"]) == 2
    moment = datetime.combine(day0, datetime.min.time(), UTC) + timedelta(hours=9)
    assert len(read(world, "ayla", to=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))["entries"]) == 0  # exclusive
    assert len(read(world, "ayla", **{"from": moment.strftime("%Y-%m-%dT%H:%M:%SZ")})["entries"]) == 4
    assert [e["dsn"] for e in read(world, "ayla", what="devices.manufacture")["entries"]] == [
        history["black"]
    ]
    assert len(read(world, "ayla", what="devices.*")["entries"]) == 4
    assert len(read(world, "ayla", user=world.emails["mm"].upper())["entries"]) == 2
    assert len(read(world, "ayla", dsn=history["black"].lower())["entries"]) == 2
    first = read(world, "ayla", limit=3)
    rest = read(world, "ayla", limit=3, cursor=first["next_cursor"])
    assert (len(first["entries"]), len(rest["entries"]), rest["next_cursor"]) == (3, 1, None)
    assert_error(
        world.client.get(AUDIT, params={"from": "24/11/2016"}, headers=world.headers("ayla")), 422, "AFS-600"
    )
    assert_error(
        world.client.get(AUDIT, params={"limit": "0"}, headers=world.headers("ayla")), 422, "AFS-600"
    )


def test_csv_streams_the_filtered_entries_with_safe_cells(
    world: World, pool: Pool, history: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    pool(1)
    ok(
        post(
            world, "mm", f"{DEVICES}/reserve", {"model": "AY001MTP1", "count": 1}, **{"X-Request-Id": "-1.1"}
        )
    )
    response = ok(
        world.client.get(
            f"{AUDIT}.csv", params={"what": "devices.reserve"}, headers=world.headers("mm_admin")
        )
    )
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][:3] == ["id", "at", "user_id"]
    assert [row[7] for row in rows[1:]] == ["devices.reserve"] * 3
    assert [int(row[0]) for row in rows[1:]] == sorted(int(row[0]) for row in rows[1:])  # chain order
    assert rows[-1][6] == "'-1.1"  # a spreadsheet formula is defused
    assert {row[4] for row in rows[1:]} == {world.oem_ids["modules"]}
    assert entries(session_factory)[-1].what == "audit.download"


def test_dashboard_page_for_admins_only(world: World, history: dict[str, str], dash: Any) -> None:
    admin = dash("mm_admin")
    page = admin.get("/dashboard/audit", params={"what": "devices.manufacture"})
    assert page.status_code == 200, page.text
    assert history["black"] in page.text
    assert 'href="/dashboard/audit"' in page.text
    assert "/dashboard/audit.csv?what=devices.manufacture" in page.text
    exported = admin.get("/dashboard/audit.csv", params={"what": "devices.manufacture"})
    assert exported.status_code == 200
    assert history["black"] in exported.text
    operator = dash("mm")
    assert 'href="/dashboard/audit"' not in operator.get("/dashboard").text
    refused = operator.get("/dashboard/audit")
    assert refused.status_code == 403
    assert "AFS-403" in refused.text


# --- the chain ---------------------------------------------------------------------------------


def test_concurrent_writers_form_one_chain(session_factory: sessionmaker[Session]) -> None:
    """Appends from many threads (PostgreSQL: many connections) never fork the chain."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                with session_scope(session_factory) as session:
                    append(
                        session,
                        EntryFields(at=datetime.now(UTC), what="test.append", object={"n": n, "i": i}),
                    )
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        verdict = verify(session)
        head = session.get(AuditHead, 1)
    assert verdict.intact, verdict.problem
    assert verdict.entries == 40
    assert head is not None
    assert head.entries == 40


def test_hash_is_sha256_of_previous_hash_and_canonical_json(session_factory: sessionmaker[Session]) -> None:
    import hashlib
    import json

    at = datetime(2026, 12, 3, 10, 0, 0, 123456, UTC)
    with session_scope(session_factory) as session:
        append(session, EntryFields(at=at, what="test.one", user_id=7, dsn="AC1", object={"b": 1, "a": "é"}))
    canonical = json.dumps(
        {
            "at": "2026-12-03T10:00:00.123456Z", "user_id": 7, "user_email": None, "oem_id": None,
            "client": None, "request_id": None, "what": "test.one", "dsn": "AC1", "action_id": None,
            "object": {"a": "é", "b": 1},
        },
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    (stored,) = entries(session_factory)
    assert stored.previous_hash == ZERO_HASH
    assert stored.entry_hash == hashlib.sha256((ZERO_HASH + canonical).encode()).hexdigest()
    assert chain_hash(stored.previous_hash, fields_of(stored)) == stored.entry_hash


def run_verify(database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEVICEFACTORY_DATABASE_URL": database_url,
        "DEVICEFACTORY_MASTER_KEY_FILE": str(tmp_path / "master.key"),
    }
    return subprocess.run(
        [sys.executable, "-m", "devicefactory", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


@pytest.fixture
def chain(session_factory: sessionmaker[Session]) -> list[int]:
    """Six entries; their ids."""
    with session_scope(session_factory) as session:
        for n in range(6):
            append(
                session, EntryFields(at=datetime.now(UTC), what="test.entry", user_email=f"u{n}@example.com")
            )
    return [entry.id for entry in entries(session_factory)]


def tamper(factory: sessionmaker[Session], statement: str, **params: Any) -> None:
    with session_scope(factory) as session:
        session.execute(text(statement), params)


def forged(factory: sessionmaker[Session], previous: int) -> tuple[str, str]:
    """A well-formed entry's hashes chained after entry ``previous``: a careful forger's."""
    with factory() as session:
        before = session.get(AuditEntry, previous)
        assert before is not None
        fields = EntryFields(at=before.at, what="test.forged")
        return before.entry_hash, chain_hash(before.entry_hash, fields)


def test_verify_intact_chain(chain: list[int], database_url: str, tmp_path: Path) -> None:
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "audit chain intact: 6 entries" in result.stdout


def test_verify_names_a_changed_entry(
    chain: list[int], session_factory: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    tamper(
        session_factory, "UPDATE audit_log SET user_email = 'someone@else.com' WHERE id = :id", id=chain[2]
    )
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 1
    assert f"entry {chain[2]} was changed" in result.stderr


def test_verify_names_a_removed_entry(
    chain: list[int], session_factory: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    tamper(session_factory, "DELETE FROM audit_log WHERE id = :id", id=chain[3])
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 1
    assert f"an entry was removed before entry {chain[4]}, after entry {chain[2]}" in result.stderr
    assert f"(entries {chain[3]} to {chain[3]})" in result.stderr


@pytest.mark.parametrize("careful", [False, True])
def test_verify_names_an_inserted_entry(
    chain: list[int], session_factory: sessionmaker[Session], database_url: str, tmp_path: Path, careful: bool
) -> None:
    # Make room after entry 2 (ids are not hashed: renumbering alone changes nothing), then
    # insert an entry there, with a made-up hash or with one computed as append would.
    tamper(session_factory, "UPDATE audit_log SET id = id + 100 WHERE id > :id", id=chain[2])
    tamper(session_factory, "UPDATE audit_head SET last_id = last_id + 100")
    previous, entry_hash = forged(session_factory, chain[2]) if careful else ("0" * 64, "f" * 64)
    with session_factory() as session:
        before = session.get(AuditEntry, chain[2])
        assert before is not None
        at = before.at
    with session_scope(session_factory) as session:
        session.add(
            AuditEntry(
                id=chain[2] + 1,
                at=at,
                what="test.forged",
                object="{}",
                previous_hash=previous,
                entry_hash=entry_hash,
            )
        )
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 1
    assert f"entry {chain[2] + 1} was inserted" in result.stderr


def test_verify_names_an_entry_appended_behind_the_heads_back(
    chain: list[int], session_factory: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    previous, entry_hash = forged(session_factory, chain[-1])
    with session_scope(session_factory) as session:
        before = session.get(AuditEntry, chain[-1])
        assert before is not None
        session.add(
            AuditEntry(
                at=before.at, what="test.forged", object="{}", previous_hash=previous, entry_hash=entry_hash
            )
        )
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 1
    assert f"entry {chain[-1] + 1} was inserted" in result.stderr


def test_verify_names_a_removed_tail(
    chain: list[int], session_factory: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    tamper(session_factory, "DELETE FROM audit_log WHERE id >= :id", id=chain[4])
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 1
    assert (
        f"the chain's tail was removed: entries after entry {chain[3]} up to entry {chain[5]}"
        in result.stderr
    )


def test_verify_of_the_requests_chain(
    world: World, pool: Pool, database_url: str, tmp_path: Path, app: FastAPI
) -> None:
    pool(2)
    reservation(world, "mm")
    reservation(world, "som", "AY001RTA")
    result = run_verify(database_url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "audit chain intact: 2 entries" in result.stdout
