"""A fleet on one database (SPEC §12): two `serve --no-workers` and two `worker` processes,
each in a working directory of its own, sharing nothing but the database.

Uploads sent to either web process are worked by either worker; kill -9 of the worker
holding an action hands it to the other with no line lost or applied twice; concurrent
reserves through both web processes get disjoint ranges; both workers fill the key pool,
without duplicates.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.tables.actions import ActionLine, FactoryAction
from devicefactory.tables.devices import Job
from devicefactory.tables.keys import FillerReport, PoolKey
from tests.keycache import KeyCache
from tests.live import LiveServer, reserved_fleet, upload_log, wait_for_action
from tests.world import World

pytestmark = pytest.mark.slow

FLEET = 12_000
WORKER_ENV = {
    "DEVICEFACTORY_KEY_POOL_TARGET": "40",
    "DEVICEFACTORY_KEY_WORKERS": "1",
    "DEVICEFACTORY_ACTION_BATCH_SIZE": "100",
    "DEVICEFACTORY_ACTION_STALE_SECONDS": "3",
    "DEVICEFACTORY_ACTION_POLL_SECONDS": "0.2",
}


class Fleet:
    def __init__(self, database_url: str, master_key_file: Path, root: Path) -> None:
        self.webs: list[LiveServer] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.database_url, self.master_key_file, self.root = database_url, master_key_file, root

    def _home(self, name: str) -> Path:
        """A working directory of its own, with its own copy of the master key file."""
        home = self.root / name
        home.mkdir()
        shutil.copyfile(self.master_key_file, home / "master.key")
        os.chmod(home / "master.key", 0o600)
        return home

    def start_web(self, name: str) -> LiveServer:
        home = self._home(name)
        web = LiveServer(self.database_url, home / "master.key", home)
        web.start()
        self.webs.append(web)
        return web

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        home = self._home(name)
        env = {
            **os.environ,
            "DEVICEFACTORY_DATABASE_URL": self.database_url,
            "DEVICEFACTORY_MASTER_KEY_FILE": str(home / "master.key"),
            **WORKER_ENV,
        }
        with (home / "worker.log").open("ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "devicefactory", "worker"],
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(15)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
        for web in self.webs:
            web.stop()


@pytest.fixture
def fleet(database_url: str, master_key_file: Path, tmp_path: Path) -> Iterator[Fleet]:
    running = Fleet(database_url, master_key_file, tmp_path)
    yield running
    running.stop()
    assert not list(tmp_path.glob("*/var/*.db")), "a process made a database of its own"


def test_two_web_processes_and_two_workers_share_only_the_database(
    fleet: Fleet, world: World, key_cache: KeyCache, session_factory: sessionmaker[Session]
) -> None:
    key_cache.fill_pool(session_factory, 80)
    web_a, web_b = fleet.start_web("web-a"), fleet.start_web("web-b")
    dsns = reserved_fleet(
        session_factory, world.oem_ids["modules"], key_cache.ensure(1)[0], FLEET, first=500_000
    )
    worker_a, worker_b = fleet.start_worker("worker-a"), fleet.start_worker("worker-b")

    # Concurrent reserves through both web processes: disjoint, contiguous ranges.
    headers = {"Authorization": f"auth_token {world.token('mm')}"}
    ranges: list[list[str]] = []

    def reserve(web: LiveServer) -> None:
        body = {"model": "AY001MTP1", "count": 5}
        answer = httpx.post(
            f"{web.url}/devicefactory/v1/devices/reserve", json=body, headers=headers, timeout=60
        )
        assert answer.status_code == 200, answer.text
        ranges.append([item["device"]["dsn"] for item in answer.json()])

    threads = [threading.Thread(target=reserve, args=(fleet.webs[n % 2],)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(ranges) == 16
    issued = [dsn for got in ranges for dsn in got]
    assert len(set(issued)) == 80
    for got in ranges:
        numbers = [int(dsn[-9:]) for dsn in got]
        assert numbers == list(range(numbers[0], numbers[0] + 5))

    # Both workers refill the pool the reserves emptied, and no key is made twice.
    deadline = time.monotonic() + 180
    while (_fillers(session_factory) < 2 or _pool(session_factory) < 40) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _fillers(session_factory) == 2, "not both workers filled the key pool"
    # One statement, one snapshot: the workers may still be adding keys past the target.
    with session_factory() as session:
        keys, distinct = session.execute(
            select(func.count(), func.count(func.distinct(PoolKey.public_key)))
        ).one()
    assert distinct == keys >= 40

    # A big upload through web A: kill -9 the worker that holds it; the other finishes it.
    action_id = upload_log(web_a, world, dsns)
    running = wait_for_action(
        web_b, world, action_id, lambda a: a["progress"]["lines_done"] >= 1000, timeout=120
    )
    assert running["status"] == "running"
    with session_factory() as session:
        holder = session.get(FactoryAction, action_id)
        assert holder is not None
        assert holder.claimed_by
        holder_pid = int(holder.claimed_by.split(":")[1])
    killed = next(worker for worker in (worker_a, worker_b) if worker.pid == holder_pid)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(10)
    done = wait_for_action(
        web_b, world, action_id, lambda a: a["status"] in ("success", "failure"), timeout=300
    )
    assert done["status"] == "success", done
    assert done["progress"]["applied"] == FLEET
    with session_factory() as session:
        lines = session.scalar(
            select(func.count()).select_from(ActionLine).where(ActionLine.action_id == action_id)
        )
        per_device = session.execute(
            select(Job.dsn, func.count()).where(Job.operation == "manufacture").group_by(Job.dsn)
        ).all()
        taker = session.get(FactoryAction, action_id)
    assert lines == FLEET
    assert len(per_device) == FLEET
    assert {count for _, count in per_device} == {1}
    assert taker is not None
    assert taker.claimed_by
    assert int(taker.claimed_by.split(":")[1]) != holder_pid

    # Small uploads through web B: worked by the surviving worker.
    survivor = next(worker for worker in (worker_a, worker_b) if worker is not killed)
    small = upload_log(web_b, world, [f"AC000W9{n:08d}" for n in range(3)])
    assert wait_for_action(web_a, world, small, lambda a: a["status"] == "failure", timeout=60)
    assert survivor.poll() is None


def _fillers(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return len(set(session.scalars(select(FillerReport.worker_id))))


def _pool(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(PoolKey)) or 0
