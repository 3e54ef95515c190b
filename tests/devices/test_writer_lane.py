"""Factory-line writes wait for the process's writer in the event loop (http/transaction.py).

On SQLite (one writer connection per process) they run one at a time, in arrival order,
and none of them holds a worker thread while it waits; every one of them still commits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from tests.api import manufacture_body, reserve
from tests.world import World

from devicefactory.devices import factory_data

Pool = Callable[[int], None]


class Overlap:
    """How many manufactures were inside the endpoint's work at once, at most."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.lock = threading.Lock()

    def wrap(self, work: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self.lock:
                self.inside += 1
                self.most = max(self.most, self.inside)
            try:
                time.sleep(0.02)  # long enough for the others to arrive meanwhile
                return work(*args, **kwargs)
            finally:
                with self.lock:
                    self.inside -= 1

        return counted


async def _manufacture_all(app: FastAPI, headers: dict[str, str], dsns: list[str]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://factory") as client:
        calls = [
            client.post(
                f"/devicefactory/v1/devices/{dsn}/manufacture", json=manufacture_body(n), headers=headers
            )
            for n, dsn in enumerate(dsns)
        ]
        return list(await asyncio.gather(*calls))


def test_line_writes_queue_for_the_writer_and_all_commit(
    world: World, pool: Pool, app: FastAPI, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool(8)
    dsns = reserve(world, "mm", count=8)
    overlap = Overlap()
    monkeypatch.setattr(factory_data, "manufacture_device", overlap.wrap(factory_data.manufacture_device))

    with ThreadPoolExecutor(1) as own_thread:  # a loop of its own, whatever the test runner runs
        calls = own_thread.submit(asyncio.run, _manufacture_all(app, world.headers("mm"), dsns))
        answers = calls.result()

    assert [answer.status_code for answer in answers] == [200] * 8, [a.text for a in answers]
    if engine.dialect.name == "sqlite":
        assert app.state.writer_lane_width == 1
        assert overlap.most == 1  # one at a time: none waited inside a worker thread
    else:
        assert app.state.writer_lane_width is None  # PostgreSQL's writers run side by side
    for dsn in dsns:
        found = world.client.get(f"/devicefactory/v1/devices/{dsn}", headers=world.headers("mm"))
        assert found.json()["device"]["status"] == "manufactured"
