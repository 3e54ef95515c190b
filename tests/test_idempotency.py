"""Idempotency-Key (SPEC §13): a retry gets the first answer and changes nothing more."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.tables.actions import FactoryAction
from devicefactory.tables.devices import Device
from tests.api import (
    ACTIONS,
    DEVICES,
    FAILURES,
    assert_error,
    jobs,
    log_line,
    manufacture_body,
    reserve,
)
from tests.conftest import FrozenClock
from tests.live import LiveServer
from tests.world import World

RESERVE = f"{DEVICES}/reserve"


def keyed(world: World, user: str, key: str) -> dict[str, str]:
    return {**world.headers(user), "Idempotency-Key": key}


def count(factory: sessionmaker[Session], table: type[Device] | type[FactoryAction]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def test_a_retried_reserve_answers_the_first_answer_and_reserves_nothing_more(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session]
) -> None:
    pool(6)
    body = {"model": "AY001MTP1", "count": 3}
    first = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "station-7:batch-1"))
    assert first.status_code == 200, first.text
    again = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "station-7:batch-1"))
    assert again.status_code == 200
    assert again.content == first.content
    assert again.headers["X-Factory-Action"] == first.headers["X-Factory-Action"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert count(session_factory, Device) == 3
    # Without a key, or with another key, the same body is a new reserve.
    other = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "station-7:batch-2"))
    assert other.status_code == 200
    assert other.content != first.content
    assert count(session_factory, Device) == 6


def test_the_same_key_for_another_request_is_refused(world: World, pool: Callable[[int], None]) -> None:
    pool(2)
    headers = keyed(world, "mm", "k-1")
    assert (
        world.client.post(RESERVE, json={"model": "AY001MTP1", "count": 1}, headers=headers).status_code
        == 200
    )
    for path, body in (
        (RESERVE, {"model": "AY001MTP1", "count": 2}),  # another body
        (f"{DEVICES}/AC000W000000001/manufacture", {"model": "AY001MTP1", "count": 1}),  # another path
    ):
        refused = world.client.post(path, json=body, headers=headers)
        assert_error(refused, 422, "AFS-600", f"{FAILURES}Idempotency-Key was used for another request")


def test_keys_belong_to_their_user(world: World, pool: Callable[[int], None]) -> None:
    pool(2)
    body = {"model": "AY001MTP1", "count": 1}
    mine = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "shared-name"))
    theirs = world.client.post(RESERVE, json=body, headers=keyed(world, "mm2", "shared-name"))
    assert mine.status_code == theirs.status_code == 200
    assert mine.json() != theirs.json()
    assert "Idempotent-Replayed" not in theirs.headers


def test_a_refusal_is_the_first_answer_too_but_try_later_is_not(
    world: World, pool: Callable[[int], None]
) -> None:
    dsn = "AC000W999999999"
    refused = world.client.post(
        f"{DEVICES}/{dsn}/manufacture", json=manufacture_body(1), headers=keyed(world, "mm", "m-1")
    )
    assert refused.status_code == 404
    replayed = world.client.post(
        f"{DEVICES}/{dsn}/manufacture", json=manufacture_body(1), headers=keyed(world, "mm", "m-1")
    )
    assert replayed.status_code == 404
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.content == refused.content

    # AFS-605 says "try later" (Retry-After): the retry with the same key does the work.
    body = {"model": "AY001MTP1", "count": 2}
    empty = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "r-1"))
    assert_error(empty, 422, "AFS-605")
    pool(2)
    later = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "r-1"))
    assert later.status_code == 200, later.text
    assert len(later.json()) == 2


def test_a_retried_manufacture_records_one_job(world: World, pool: Callable[[int], None]) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm")
    answers = [
        world.client.post(
            f"{DEVICES}/{dsn}/manufacture",
            json=manufacture_body(1),
            headers=keyed(world, "mm", "line-4/0001"),
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[1].content == answers[2].content == answers[0].content
    assert jobs(world, dsn) == [("reserve", "success", None), ("manufacture", "success", None)]


def test_a_retried_upload_makes_one_action(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session]
) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm")
    before = count(session_factory, FactoryAction)
    content = (log_line(dsn, "aabbccddee01", "sig-1") + "\n").encode()

    def send() -> httpx.Response:
        files = {"file": ("line.log", content, "text/plain")}
        return world.client.post(
            ACTIONS, data={"type": "manufacture"}, files=files, headers=keyed(world, "mm", "upload-1")
        )

    first, second = send(), send()  # each send picks its own multipart boundary
    assert first.status_code == second.status_code == 202, first.text
    assert second.headers["X-Factory-Action"] == first.headers["X-Factory-Action"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count(session_factory, FactoryAction) == before + 1


def test_a_key_is_kept_for_24_hours(world: World, pool: Callable[[int], None], clock: FrozenClock) -> None:
    pool(2)
    body = {"model": "AY001MTP1", "count": 1}
    first = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "daily"))
    clock.advance(hours=23)
    assert world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "daily")).content == first.content
    clock.advance(hours=2)
    world._tokens.clear()
    later = world.client.post(RESERVE, json=body, headers=keyed(world, "mm", "daily"))
    assert later.status_code == 200
    assert later.content != first.content


def test_a_malformed_key_is_refused(world: World) -> None:
    for key in ("x" * 256, "tab\there", "ünïcode".encode()):
        headers = {**world.headers("mm"), "Idempotency-Key": key}
        refused = world.client.post(RESERVE, json={"model": "AY001MTP1", "count": 1}, headers=headers)
        assert_error(refused, 422, "AFS-600")


def test_parallel_twins_with_one_key_do_the_work_once(
    world: World, pool: Callable[[int], None], live_server: LiveServer, session_factory: sessionmaker[Session]
) -> None:
    pool(50)
    headers = keyed(world, "mm", "burst")
    barrier = threading.Barrier(8)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            barrier.wait()
            return client.post(RESERVE, json={"model": "AY001MTP1", "count": 5}, headers=headers)

    with ThreadPoolExecutor(8) as executor:
        answers = list(executor.map(send, range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.content for a in answers}) == 1
    assert len({a.headers["X-Factory-Action"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert count(session_factory, Device) == 5
