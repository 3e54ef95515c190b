"""The offline floor (SPEC §13): ``record`` journals while the service is down, ``sync`` sends the
journal in order with the Idempotency-Key each record was journaled with, resumes after kill -9,
and keeps refused records aside. Every changing POST carries an Idempotency-Key."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.client.journal import Journal
from tests.keycache import KeyCache
from tests.live import LiveServer, free_port, reserved_fleet
from tests.test_client_support import (
    MAC_BASE,
    Answer,
    Floor,
    Seen,
    command,
    isolate_home,
    journal_lines,
    manufacture_fields,
    stand_in,
)
from tests.world import PASSWORD, World

V1 = "/devicefactory/v1"


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    return isolate_home(monkeypatch, tmp_path)


@pytest.fixture
def server(world: World, database_url: str, master_key_file: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(database_url, master_key_file, tmp_path)
    live.start()
    yield live
    live.stop()


def fleet(world: World, session_factory: sessionmaker[Session], key_cache: KeyCache, count: int) -> list[str]:
    return reserved_fleet(session_factory, world.oem_ids["modules"], key_cache.ensure(1)[0], count)


def states(config: Path) -> dict[str, str]:
    """Each journaled record's state (its last mark), by key."""
    return {e.key: e.state for e in Journal(config / "journal" / "default.jsonl").entries()}


def manufactured(server: LiveServer, world: World) -> dict[str, str]:
    """dsn -> mac of the modules OEM's manufactured devices, as the service holds them."""
    response = httpx.get(
        f"{server.url}{V1}/devices",
        params={"status": "manufactured", "limit": "500"},
        headers=world.headers("mm"),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {d["dsn"]: d["mac"] for d in response.json()["devices"]}


def test_records_wait_in_the_journal_while_the_service_is_down_and_go_in_order_once_it_is_up(
    world: World,
    session_factory: sessionmaker[Session],
    key_cache: KeyCache,
    server: LiveServer,
    config: Path,
) -> None:
    dsns = fleet(world, session_factory, key_cache, 3)
    floor = Floor(server.url)
    floor.sign_in("mm@example.com", PASSWORD)
    server.stop()

    first = floor.run("record", dsns[0], *manufacture_fields(0))
    assert "journaled manufacture of " + dsns[0] in first.stdout
    journal = config / "journal" / "default.jsonl"
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700
    floor.run("record", dsns[1], *manufacture_fields(1))  # behind the first, still down
    floor.run("record", "AC000W999999999", *manufacture_fields(9))  # will be refused (404)
    lines = journal_lines(config)
    records = [line for line in lines if line["op"] == "record"]
    assert [r["dsn"] for r in records] == [dsns[0], dsns[1], "AC000W999999999"]
    assert len({r["key"] for r in records}) == 3
    assert all(r["key"] for r in records)

    down = floor.run("sync", code=3)
    assert "0 sent, 0 refused, 3 waiting" in down.stdout
    assert set(states(config).values()) == {"pending"}

    server.start()
    # A new record goes in behind the waiting ones, and they all go, in order.
    behind = floor.run("record", dsns[2], *manufacture_fields(2))
    assert "1 refused" in behind.stderr
    assert json.loads(behind.stdout)["dsn"] == dsns[2]
    assert manufactured(server, world) == {dsn: f"{MAC_BASE + n:012x}" for n, dsn in enumerate(dsns)}
    left = Journal(journal).entries()
    assert [(e.dsn, e.state) for e in left] == [("AC000W999999999", "refused")]
    assert "AFS-404" in (left[0].error or "")

    # Refused records are listed, never sent again, and can be dropped.
    assert "refused  " in floor.out("journal", "--state", "refused")
    assert "0 sent, 0 refused, 0 waiting" in floor.out("sync")
    floor.out("journal", "--drop-refused")
    assert floor.out("journal") == ""


def test_sync_killed_mid_way_resumes_and_applies_every_record_once(
    world: World,
    session_factory: sessionmaker[Session],
    key_cache: KeyCache,
    server: LiveServer,
    config: Path,
) -> None:
    count = 60
    dsns = fleet(world, session_factory, key_cache, count)
    floor = Floor(server.url)
    floor.sign_in("mm@example.com", PASSWORD)
    server.stop()
    for n, dsn in enumerate(dsns):
        floor.run("record", dsn, *manufacture_fields(n))
    assert list(states(config).values()) == ["pending"] * count
    keys = {line["key"]: line["dsn"] for line in journal_lines(config) if line["op"] == "record"}

    server.start()
    sync = subprocess.Popen(command("sync"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(s == "done" for s in states(config).values()) < 5:
        time.sleep(0.01)
    os.kill(sync.pid, signal.SIGKILL)
    sync.wait(10)
    done_at_kill = sum(s == "done" for s in states(config).values())
    assert 5 <= done_at_kill < count, "the kill did not land mid-sync"
    # Every send was preceded by its durable "sending" mark, under the record's own key.
    sends = [line["key"] for line in journal_lines(config) if line["op"] == "sending"]
    assert set(sends) <= set(keys)
    assert len(sends) >= done_at_kill

    again = floor.run("sync")
    assert ", 0 refused, 0 waiting" in again.stdout
    assert Journal(config / "journal" / "default.jsonl").entries() == []  # compacted: all done
    assert manufactured(server, world) == {dsn: f"{MAC_BASE + n:012x}" for n, dsn in enumerate(dsns)}
    with httpx.Client(base_url=server.url, headers=world.headers("mm")) as http:
        for dsn in dsns:  # applied once each (a resent in-doubt record may add a refused try)
            jobs = http.get(f"{V1}/devices/{dsn}/jobs").json()["jobs"]
            assert [j["operation"] for j in jobs if j["result"] == "success"] == ["manufacture"]


def test_a_record_in_doubt_that_the_service_already_applied_is_done_not_refused(
    world: World,
    session_factory: sessionmaker[Session],
    key_cache: KeyCache,
    server: LiveServer,
    config: Path,
) -> None:
    dsns = fleet(world, session_factory, key_cache, 2)
    floor = Floor(server.url)
    floor.sign_in("mm@example.com", PASSWORD)
    floor.out("record", dsns[0], *manufacture_fields(0))
    # As if a sync had sent it and died before writing down the answer:
    journal = Journal.of_profile("default")
    body = dict(field.split("=", 1) for field in manufacture_fields(0))
    same = journal.append_record(key="k-1", dsn=dsns[0], operation="manufacture", body=body)
    journal.mark(same.key, "sending")
    other = {**dict(field.split("=", 1) for field in manufacture_fields(1)), "hwsig": "another"}
    clash = journal.append_record(key="k-2", dsn=dsns[0], operation="manufacture", body=other)
    journal.mark(clash.key, "sending")

    result = floor.run("sync", code=2)
    assert "1 sent, 1 refused" in result.stdout
    assert "AFS-606" in result.stdout
    assert [(e.key, e.state) for e in journal.entries()] == [("k-2", "refused")]


# --- headers, against a stand-in service -------------------------------------------------------


def _public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    )


def test_every_change_carries_an_idempotency_key(config: Path, tmp_path: Path) -> None:
    pem = _public_pem()
    device = {"dsn": "AC000W000000001", "public_key": pem, "ads_connect_flag": True, "verified_at": "now"}
    tokens = {"access_token": "a", "refresh_token": "r", "expires_in": 86400, "role": "OEM::Admin"}

    def script(seen: Seen) -> Answer:
        if seen.path.startswith("/users/sign_in"):
            return 200, {}, tokens
        if seen.path.endswith("/reserve"):
            return 200, {"X-Factory-Action": "7"}, [{"device": device}]
        if seen.path.endswith("/files/xml"):
            return 200, {"Content-Type": "application/octet-stream"}, b"0\x82bundle"
        if seen.path == f"{V1}/factory_actions":
            return 202, {}, {"factory_action": {"id": 8}}
        if seen.path.endswith("/factory_reset"):
            return 200, {}, {"device": device, "steps": [{"step": "reset template", "result": "success"}]}
        return 200, {}, {"device": device}

    log = tmp_path / "line.log"
    log.write_text("2,1,2026/11/22 08:00:00 UTC,label,0,AY001MTP1,AC000W000000001,aabbccddee01,m,s,s1,\n")
    with stand_in(script) as fake:
        floor = Floor(fake.url)
        floor.sign_in("admin@example.com", PASSWORD)
        floor.out("reserve", "--model", "AY001MTP1", "--count", "1", "--out", str(tmp_path / "out"))
        floor.out("record", "AC000W000000001", *manufacture_fields(1))
        floor.out("record", "AC000W000000001", "--provision", "model=AY001MTP1", "oem_model=x")
        floor.out("verify", "AC000W000000001")
        floor.out("factory-reset", "AC000W000000001")
        floor.out("upload", str(log), "--type", "manufacture", "--no-wait")
    changes = [s for s in fake.posts() if not s.path.startswith("/users/")]
    assert [s.path.rsplit("/", 1)[-1] for s in changes] == [
        "reserve",
        "manufacture",
        "provision",
        "verify",
        "factory_reset",
        "factory_actions",
    ]
    keys = [s.headers.get("idempotency-key") for s in changes]
    assert all(keys)
    assert len(set(keys)) == len(keys)
    assert all(s.headers["authorization"] == "auth_token a" for s in changes)
    sign_in = fake.posts()[0]
    assert "idempotency-key" not in sign_in.headers


def test_a_record_keeps_its_key_through_a_5xx_a_journal_and_a_token_refresh(config: Path) -> None:
    answers: list[Answer] = [
        (503, {}, {"error": [{"code": "AFS-503", "message": "busy"}]}),  # record: journaled
        (401, {}, {"error": [{"code": "AFS-401", "message": "expired"}]}),  # sync: refresh, again
        (200, {}, {"device": {"dsn": "AC000W000000001"}}),
    ]

    def script(seen: Seen) -> Answer:
        if seen.path.startswith("/users/sign_in"):
            return 200, {}, {"access_token": "old", "refresh_token": "r1", "expires_in": 86400, "role": "x"}
        if seen.path.startswith("/users/refresh_token"):
            assert json.loads(seen.body) == {"user": {"refresh_token": "r1"}}
            return 200, {}, {"access_token": "new", "refresh_token": "r2", "expires_in": 86400, "role": "x"}
        return answers.pop(0)

    with stand_in(script) as fake:
        floor = Floor(fake.url)
        floor.sign_in("mm@example.com", PASSWORD)
        assert "journaled" in floor.out("record", "AC000W000000001", *manufacture_fields(1))
        assert "1 sent, 0 refused, 0 waiting" in floor.out("sync")
    sends = [s for s in fake.posts() if s.path.endswith("/manufacture")]
    assert len(sends) == 3
    assert len({s.headers["idempotency-key"] for s in sends}) == 1
    assert [s.headers["authorization"] for s in sends] == [
        "auth_token old",
        "auth_token old",
        "auth_token new",
    ]
    profile: dict[str, Any] = json.loads((config / "profiles" / "default.json").read_text())
    assert (profile["access_token"], profile["refresh_token"]) == ("new", "r2")


def test_a_torn_last_line_is_cut_before_the_next_append(config: Path) -> None:
    journal = Journal.of_profile("default")
    journal.append_record(key="k-1", dsn="AC000W000000001", operation="manufacture", body={"model": "m"})
    with journal.path.open("a") as stream:
        stream.write('{"v":1,"op":"done","key":"k-1"')  # killed mid-write: no newline
    assert [e.state for e in journal.entries()] == ["pending"]
    journal.mark("k-1", "sending")
    assert [e.attempts for e in journal.entries()] == [1]
    assert journal.path.read_text().count("\n") == 2


def test_nothing_answers_on_a_closed_port(config: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert (
        Floor(url)
        .run("--env", url, "device", "AC000W000000001", code=3)
        .output.startswith("Error: cannot reach")
    )


def test_a_key_poisoned_by_a_send_cut_mid_body_is_replaced_before_the_record_goes_again(config: Path) -> None:
    reused = {
        "error": [
            {
                "code": "AFS-600",
                "message": "There were some failures while processing: "
                "Idempotency-Key was used for another request",
            }
        ]
    }
    answers: list[Answer] = [(422, {}, reused), (200, {}, {"device": {"dsn": "AC000W000000001"}})]

    def script(seen: Seen) -> Answer:
        if seen.method == "GET":
            return 200, {}, {"device": {"dsn": "AC000W000000001", "status": "reserved", "mac": None}}
        return answers.pop(0)

    journal = Journal.of_profile("default")
    body = dict(field.split("=", 1) for field in manufacture_fields(1))
    journal.append_record(key="k-1", dsn="AC000W000000001", operation="manufacture", body=body)
    journal.mark("k-1", "sending")  # the sync that sent it was killed mid-request
    with stand_in(script) as fake:
        assert "1 sent, 0 refused, 0 waiting" in Floor(fake.url).out(
            "--env", fake.url, "--token", "t", "sync"
        )
    sends = [s.headers["idempotency-key"] for s in fake.posts()]
    assert sends[0] == "k-1"
    assert sends[1] not in ("k-1", "")
    assert journal.entries() == []
