"""Isolation and limits (SPEC §11), through the app: each limit answers 429 AFS-429 with
Retry-After, one OEM's load or refusals never reach another's, and answers reveal nothing.

The noisy-neighbour storms against a real server are in test_noisy_neighbour.py.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Iterator

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import service as accounts_service
from devicefactory.db import is_statement_timeout, make_engine, session_scope, utcnow
from devicefactory.keys.crypto import encrypt_verify_token
from devicefactory.tables.keys import FillerReport
from tests.api import (
    ACTIONS,
    DEVICES,
    assert_error,
    job_records,
    log_line,
    manufacture,
    manufacture_body,
    post_reserve,
    provision,
    reservation,
    reserve,
    upload,
)
from tests.conftest import FrozenClock
from tests.world import PASSWORD, World

Pool = Callable[[int], None]


def _sign_in(client: TestClient, email: str, password: str) -> httpx2.Response:
    return client.post("/users/sign_in.json", json={"user": {"email": email, "password": password}})


def _assert_429(response: httpx2.Response, what: str) -> int:
    """AFS-429 naming what was limited, with a Retry-After in whole seconds; returns it."""
    message = assert_error(response, 429, "AFS-429")
    assert what in message, message
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert f"Retry after {retry_after} seconds" in message
    return retry_after


# --- heavy reads ------------------------------------------------------------------------------


@pytest.fixture
def junk_upload(world: World, run_actions: Callable[[], int]) -> int:
    """A worked upload of OEM modules2 whose 3,000 lines all failed (unknown DSNs)."""
    lines = [log_line(f"AC000W8{n:08d}", f"{n:012x}", f"junk-{n}") for n in range(3000)]
    action_id: int = upload(world, "mm2", lines)["id"]
    run_actions()
    return action_id


def test_an_oems_heavy_reads_are_bounded_and_another_oem_is_not_held_back(
    world: World, junk_upload: int, pool: Pool
) -> None:
    heavy = world.client.app.state.heavy_reads  # type: ignore[attr-defined]
    neighbour = world.oem_ids["modules2"]
    slots = [heavy.enter(neighbour) for _ in range(heavy.limit)]  # its downloads in flight
    try:
        for kind in ("csv", "log", "failed"):
            refused = world.client.get(f"{ACTIONS}/{junk_upload}/files/{kind}", headers=world.headers("mm2"))
            _assert_429(refused, "in flight for your OEM")
        searched = world.client.get(DEVICES, params={"dsn": "AC*"}, headers=world.headers("mm2"))
        _assert_429(searched, "in flight for your OEM")
        # Another OEM reads, searches and writes as usual meanwhile.
        pool(1)
        (dsn,) = reserve(world, "mm")
        assert (
            world.client.get(DEVICES, params={"dsn": "AC*"}, headers=world.headers("mm")).status_code == 200
        )
        assert manufacture(world, dsn, manufacture_body(1)).status_code == 200
    finally:
        for slot in slots:
            slot.release()
    freed = world.client.get(f"{ACTIONS}/{junk_upload}/files/failed", headers=world.headers("mm2"))
    assert freed.status_code == 200
    assert freed.text.count("\n") == 3000
    assert heavy.in_flight(neighbour) == 0  # the finished download gave its slot back


def test_files_are_streamed_in_pages_with_every_line(world: World, junk_upload: int) -> None:
    headers = world.headers("mm2")
    with world.client.stream("GET", f"{ACTIONS}/{junk_upload}/files/log", headers=headers) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # sent as it is read
        chunks = list(response.iter_bytes())
    log = b"".join(chunks).decode().splitlines()
    assert len(log) == 3001
    assert log[-1].startswith("# summary: manufacture failure: 3000 of 3000 lines")
    csv_rows = world.client.get(f"{ACTIONS}/{junk_upload}/files/csv", headers=headers).text.splitlines()
    assert len(csv_rows) == 3001
    assert csv_rows[1] == "AC000W800000000,,,invalid,AFS-404"


def test_statement_timeout_stops_a_long_query(database_url: str) -> None:
    engine = make_engine(database_url, statement_timeout=0.3)
    long_query = (
        "SELECT pg_sleep(5)"
        if engine.dialect.name == "postgresql"
        else "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"
    )
    try:
        with pytest.raises(OperationalError) as stopped, engine.connect() as connection:
            connection.execute(text(long_query)).all()
        assert is_statement_timeout(stopped.value)
        with engine.connect() as connection:  # the connection still works afterwards
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


# --- sign-in ---------------------------------------------------------------------------------


@pytest.fixture
def lenient(world: World) -> TestClient:
    return TestClient(world.client.app, raise_server_exceptions=False)


def test_an_unknown_email_is_answered_exactly_as_a_known_one_lock_included(
    world: World, lenient: TestClient
) -> None:
    known, unknown = world.emails["mm"], "nobody-here@example.com"
    for attempt in range(5):
        answers = [_sign_in(lenient, email, "wrong password!") for email in (known, unknown)]
        assert [a.status_code for a in answers] == [401, 401], attempt
        assert answers[0].json() == answers[1].json()
        assert answers[0].json()["error"][0]["message"] == "Invalid email or password"
    locked = [_sign_in(lenient, email, "wrong password!") for email in (known, unknown)]
    assert locked[0].json() == locked[1].json()
    message = assert_error(locked[0], 401, "AFS-401")
    assert message == ("Too many failed sign-ins: signing in with this email is locked for 30 more minutes")
    # Locked even with the right password; other emails are not.
    assert _sign_in(lenient, known, PASSWORD).json() == locked[0].json()
    assert _sign_in(lenient, world.emails["mm2"], PASSWORD).status_code == 200


def test_the_lock_ends_after_30_minutes(world: World, lenient: TestClient, clock: FrozenClock) -> None:
    email = world.emails["som"]
    for _ in range(5):
        assert _sign_in(lenient, email, "wrong password!").status_code == 401
    clock.advance(minutes=29)
    assert "locked for 1 more minute" in _sign_in(lenient, email, PASSWORD).text
    clock.advance(minutes=1, seconds=1)
    assert _sign_in(lenient, email, PASSWORD).status_code == 200


def test_sign_ins_are_limited_per_email_and_per_address(world: World, lenient: TestClient) -> None:
    limits = world.client.app.state.sign_in_limits  # type: ignore[attr-defined]
    per_email, per_address = limits.by_email.limit, limits.by_address.limit
    email = world.emails["gateway_admin"]
    for _ in range(per_email):
        assert _sign_in(lenient, email, PASSWORD).status_code == 200
    _assert_429(_sign_in(lenient, email, PASSWORD), "sign-ins with this email")
    # A storm of unknown emails from one address meets the address's limit.
    answers = [_sign_in(lenient, f"guess{n}@example.com", "x" * 8) for n in range(per_address)]
    assert {a.status_code for a in answers} <= {401, 429}
    _assert_429(_sign_in(lenient, "guess-last@example.com", "x" * 8), "sign-ins from your address")


def test_hashing_the_password_holds_no_write_lock(
    world: World, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a sign-in checks its password, another transaction writes at once."""
    checking, release = threading.Event(), threading.Event()
    real = accounts_service.verify_password

    def slow_check(password_hash: str | None, password: str) -> bool:
        checking.set()
        release.wait()  # untimed: timed waits hang under libfaketime (devicefactory.processes)
        return real(password_hash, password)

    monkeypatch.setattr(accounts_service, "verify_password", slow_check)
    answer: list[int] = []
    signing_in = threading.Thread(
        target=lambda: answer.append(_sign_in(world.client, world.emails["mm"], PASSWORD).status_code)
    )
    signing_in.start()
    try:
        assert checking.wait(30)
        write_lock_free = threading.Event()

        def write() -> None:
            with session_scope(session_factory) as session:
                session.execute(
                    insert(FillerReport).values(worker_id="w", keys_per_second=1.0, updated_at=utcnow())
                )
            write_lock_free.set()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert write_lock_free.wait(10), "a write waited for the sign-in's password check"
    finally:
        release.set()
        signing_in.join(30)
    assert answer == [200]


# --- the key pool's fair share ----------------------------------------------------------------


@pytest.fixture
def shared_pool(world: World, pool: Pool) -> Iterator[None]:
    """A pool of 30 keys with a target of 100: the last 20 are kept for batches of <= 5."""
    settings = world.client.app.state.settings  # type: ignore[attr-defined]
    kept = settings.key_pool_target
    settings.key_pool_target = 100
    pool(30)
    yield
    settings.key_pool_target = kept


def test_one_oems_big_reserves_leave_the_floor_for_other_oems(world: World, shared_pool: None) -> None:
    assert len(reserve(world, "mm", count=10)) == 10  # 20 left: the floor
    refused = post_reserve(world, "mm", {"model": "AY001MTP1", "count": 5})
    assert_error(
        refused,
        422,
        "AFS-605",
        "There are not enough reservable devices for your request. Please try later",
    )
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-Reservable-Now"] == "0"
    # Another OEM still gets a small batch from the floor, once.
    assert len(reserve(world, "som", "AY001RTA", 5)) == 5
    again = post_reserve(world, "som", {"model": "AY001RTA", "count": 1})
    assert_error(again, 422, "AFS-605")
    assert len(reserve(world, "mm2", count=3)) == 3


def test_retry_after_comes_from_the_measured_fill_rate(
    world: World, shared_pool: None, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        session.execute(
            insert(FillerReport).values(worker_id="filler", keys_per_second=2.0, updated_at=utcnow())
        )
    reserve(world, "mm", count=10)
    refused = post_reserve(world, "mm", {"model": "AY001MTP1", "count": 8})
    assert_error(refused, 422, "AFS-605")
    assert refused.headers["Retry-After"] == "4"  # 8 keys missing at 2 keys/s


# --- verify, foreign refusals, files -----------------------------------------------------------


def test_a_verify_token_is_accepted_once(world: World, pool: Pool, clock: FrozenClock) -> None:
    pool(1)
    (device,) = reservation(world, "mm").devices
    dsn, public_key = device["dsn"], device["public_key"]
    message = f"{dsn}:{int(clock.now.timestamp())}".encode()
    body = {"token": base64.b64encode(encrypt_verify_token(public_key, message)).decode()}
    url = f"{DEVICES}/{dsn}/verify"
    assert world.client.post(url, json=body, headers=world.headers("mm")).status_code == 200
    replay = world.client.post(url, json=body, headers=world.headers("mm"))
    assert_error(replay, 422, "AFS-600", "There were some failures while processing: token was already used")
    # A new token (a new moment) works.
    clock.advance(seconds=1)
    fresh = f"{dsn}:{int(clock.now.timestamp())}".encode()
    body = {"token": base64.b64encode(encrypt_verify_token(public_key, fresh)).decode()}
    assert world.client.post(url, json=body, headers=world.headers("mm")).status_code == 200


def test_another_oems_refused_call_is_its_own_record(world: World, pool: Pool) -> None:
    """A product maker may provision any manufactured black-box module; its refused attempt
    is recorded for it alone, not in the module maker's history or errors=failure."""
    pool(1)
    (dsn,) = reserve(world, "mm")
    assert manufacture(world, dsn, manufacture_body(7)).status_code == 200
    refused = provision(world, dsn, {"model": "AY001MTP1", "oem_model": "lamp"}, "mom")
    assert_error(refused, 422, "AFS-607")
    mine = world.client.get(f"{DEVICES}/{dsn}/jobs", headers=world.headers("mm")).json()["jobs"]
    assert [(j["operation"], j["result"]) for j in mine] == [
        ("reserve", "success"),
        ("manufacture", "success"),
    ]
    failing = world.client.get(DEVICES, params={"errors": "failure"}, headers=world.headers("mm")).json()
    assert failing["devices"] == []
    assert (
        world.client.get(f"{DEVICES}/{dsn}", headers=world.headers("mm")).json()["device"]["last_job_failed"]
        is False
    )
    # The platform sees every record, the refused one included.
    assert [j["operation"] for j in job_records(world, dsn)] == ["reserve", "manufacture", "provision"]
    # Once the product maker owns the device, its records are the device's own again.
    body = {"model": "AY001MTP1", "oem_model": "lamp", "oem_host_version": "1.0", "module_sw_version": "1"}
    assert provision(world, dsn, body, "mom").status_code == 200


# --- the operator's surface --------------------------------------------------------------------


def test_metrics_need_the_token_or_loopback(world: World) -> None:
    app = world.client.app
    assert world.client.get("/metrics").status_code == 200  # the test client counts as this host
    remote = TestClient(app, client=("203.0.113.7", 40000))
    assert_error(remote.get("/metrics"), 403, "AFS-403")
    settings = app.state.settings  # type: ignore[attr-defined]
    settings.metrics_token = "scrape-me"
    try:
        assert_error(world.client.get("/metrics"), 403, "AFS-403")
        answer = remote.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert answer.status_code == 200
        assert "devicefactory_limited_requests_total" in answer.text or "devicefactory_http" in answer.text
    finally:
        settings.metrics_token = None


def test_refusals_and_reserves_are_counted_in_metrics(world: World, pool: Pool, lenient: TestClient) -> None:
    pool(1)
    reserve(world, "mm")
    email = world.emails["mm2"]
    limit = world.client.app.state.sign_in_limits.by_email.limit  # type: ignore[attr-defined]
    for _ in range(limit + 1):
        _sign_in(lenient, email, "wrong password!")
    metrics = world.client.get("/metrics").text
    assert f'devicefactory_reserves_total{{oem="{world.oem_ids["modules"]}"}} 1.0' in metrics
    assert 'devicefactory_limited_requests_total{limit="sign_in_per_email"} 1.0' in metrics
    assert "devicefactory_key_pool_fill_rate" in metrics


def test_access_log_lines_name_the_client_user_and_oem(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devicefactory.web")
    world.client.get(DEVICES, headers=world.headers("mm"))
    line = next(
        r.getMessage() for r in caplog.records if r.getMessage().startswith("GET /devicefactory/v1/devices ")
    )
    assert "client=testclient" in line
    assert f"user={world.emails['mm']}" in line
    assert f"oem={world.oem_ids['modules']}" in line


def test_oversized_headers_are_431(world: World) -> None:
    response = world.client.get("/healthz", headers={"X-Filler": "x" * 20_000})
    assert_error(response, 431, "AFS-431")


def test_headers_carry_nothing_that_tells_a_tenant_apart(world: World, lenient: TestClient) -> None:
    """A refused download of another OEM's file answers like an unknown action."""
    other = upload(world, "mm2", [log_line("AC000W800000001", "aa0000000001", "h1")])["id"]
    theirs = world.client.get(f"{ACTIONS}/{other}/files/csv", headers=world.headers("mm"))
    unknown = world.client.get(f"{ACTIONS}/999999/files/csv", headers=world.headers("mm"))
    assert (theirs.status_code, unknown.status_code) == (404, 404)
    assert theirs.json()["error"][0]["code"] == unknown.json()["error"][0]["code"] == "AFS-404"
