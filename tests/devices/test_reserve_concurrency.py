"""Concurrent reservations never overlap; a crash mid-reserve loses or duplicates nothing."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.live import LiveServer
from tests.world import World

from devicefactory.tables.devices import Device
from devicefactory.tables.keys import PoolKey

RESERVERS = ["mm", "mm_admin", "mm2", "som", "gateway_admin", "som2", "product_admin", "ayla"]


def _model(user: str) -> str:
    return "AY001MTP1" if user in ("mm", "mm_admin", "mm2", "ayla") else "AY001RTA"


def test_16_concurrent_reserves_get_disjoint_contiguous_ranges(
    world: World, pool: Callable[[int], None], live_server: LiveServer
) -> None:
    pool(800)
    headers = {user: world.headers(user) for user in RESERVERS}
    barrier = threading.Barrier(16)

    def reserve(index: int) -> list[dict[str, str]]:
        user = RESERVERS[index % len(RESERVERS)]
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            barrier.wait()
            response = client.post(
                "/devicefactory/v1/devices/reserve",
                json={"model": _model(user), "count": 50},
                headers=headers[user],
            )
        assert response.status_code == 200, response.text
        return [item["device"] for item in response.json()]

    with ThreadPoolExecutor(16) as executor:
        results = list(executor.map(reserve, range(16)))

    dsns = [d["dsn"] for devices in results for d in devices]
    keys = [d["public_key"] for devices in results for d in devices]
    assert len(set(dsns)) == 800
    assert len(set(keys)) == 800
    for devices in results:
        numbers = [int(d["dsn"][-9:]) for d in devices]
        assert numbers == list(range(numbers[0], numbers[0] + 50))  # one contiguous range each
    starts = sorted(int(devices[0]["dsn"][-9:]) for devices in results)
    assert starts == list(range(1, 801, 50))  # and together they tile 1..800 without gaps


def test_sigkill_during_a_1000_device_reserve_is_all_or_nothing(
    world: World, pool: Callable[[int], None], live_server: LiveServer, session_factory: sessionmaker[Session]
) -> None:
    pool(1010)
    headers = world.headers("mm")
    outcomes = []
    for delay in (0.02, 0.08, 0.2):
        before = _counts(session_factory)
        sender = threading.Thread(target=_send_reserve, args=(live_server.url, headers), daemon=True)
        sender.start()
        time.sleep(delay)
        live_server.kill()
        sender.join(30)
        devices, pooled, distinct_keys = _counts(session_factory)
        assert devices - before[0] in (0, 1000), f"{devices - before[0]} devices after a crash"
        assert devices + pooled == before[0] + before[1], "a key was lost or duplicated"
        assert distinct_keys == devices + pooled
        outcomes.append(devices - before[0])
        live_server.start()
        if pooled < 1000:
            break
    # After the restart the service works: a small reserve succeeds.
    response = httpx.post(
        f"{live_server.url}/devicefactory/v1/devices/reserve",
        json={"model": "AY001MTP1", "count": 1},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert 0 in outcomes, f"the kill never landed mid-reserve: {outcomes}"


def _send_reserve(url: str, headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(
            f"{url}/devicefactory/v1/devices/reserve",
            json={"model": "AY001MTP1", "count": 1000},
            headers=headers,
            timeout=30,
        )


def _counts(factory: sessionmaker[Session]) -> tuple[int, int, int]:
    with factory() as session:
        devices = session.scalar(select(func.count()).select_from(Device)) or 0
        pooled = session.scalar(select(func.count()).select_from(PoolKey)) or 0
        keys = set(session.scalars(select(Device.public_key))) | set(
            session.scalars(select(PoolKey.public_key))
        )
    return devices, pooled, len(keys)
