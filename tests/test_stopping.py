"""Stopping (§11): SIGTERM or SIGINT to the pid of ``serve`` or ``worker`` alone ends every
process it started within 10 s, and the upload it was working resumes on restart with
every line applied once; after SIGKILL of ``serve`` no child outlives it by 10 s.

Each test signals while the key pool is being filled and an upload is being worked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.tables.actions import ActionLine, FactoryAction
from devicefactory.tables.devices import Device, Job
from devicefactory.tables.keys import PoolKey
from tests.keycache import KeyCache
from tests.live import (
    LiveServer,
    descendants,
    kill_all,
    reserved_fleet,
    upload_log,
    wait_for_action,
    wait_until_gone,
)
from tests.world import World

pytestmark = pytest.mark.slow

FLEET = 30_000
STOP_SECONDS = 10
BUSY = {
    "DEVICEFACTORY_KEY_POOL_TARGET": "1000000",  # the pool filler never rests
    "DEVICEFACTORY_ACTION_BATCH_SIZE": "100",
    "DEVICEFACTORY_ACTION_STALE_SECONDS": "3",
}


@pytest.fixture
def fleet(world: World, key_cache: KeyCache, session_factory: sessionmaker[Session]) -> list[str]:
    return reserved_fleet(session_factory, world.oem_ids["modules"], key_cache.ensure(1)[0], FLEET)


def _server(database_url: str, master_key_file: Path, tmp_path: Path, **options: bool) -> LiveServer:
    return LiveServer(database_url, master_key_file, tmp_path, web_workers=2, extra_env=BUSY, **options)


def _until_busy(server: LiveServer, world: World, fleet: list[str], factory: sessionmaker[Session]) -> int:
    """Upload the fleet's log; returns once it is being worked and keys are being made.

    The pool filler is waited for first: the upload, once started, may finish before the
    first key is stored, and there would be nothing left to interrupt."""
    deadline = time.monotonic() + 60
    while _pool_size(factory) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pool_size(factory) > 0, "the key pool filler is not running"
    action_id = upload_log(server, world, fleet)
    wait_for_action(server, world, action_id, lambda a: a["progress"]["lines_done"] >= 300, timeout=60)
    return action_id


def _finished(action: dict[str, Any]) -> bool:
    return action["status"] in ("success", "failure")


def _pool_size(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(PoolKey)) or 0


def _stops_within(process: subprocess.Popen[bytes], tree: set[int], signum: int) -> None:
    started = time.monotonic()
    os.kill(process.pid, signum)  # that process alone, not its group
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        kill_all({process.pid, *tree})
        raise AssertionError(f"pid {process.pid} did not stop within {STOP_SECONDS}s") from None
    left = wait_until_gone(tree, STOP_SECONDS - (time.monotonic() - started))
    kill_all(left)
    assert not left, f"still running {STOP_SECONDS}s after the signal: {sorted(left)}"


def _each_line_once(factory: sessionmaker[Session], action_id: int) -> None:
    with factory() as session:
        action = session.get(FactoryAction, action_id)
        assert action is not None
        assert (action.status, action.applied, action.lines_done) == ("success", FLEET, FLEET)
        lines = select(func.count()).select_from(ActionLine).where(ActionLine.action_id == action_id)
        assert session.scalar(lines) == FLEET
        made = select(func.count()).select_from(Device).where(Device.status == "manufactured")
        assert session.scalar(made) == FLEET
        per_device = select(Job.dsn, func.count()).where(Job.operation == "manufacture").group_by(Job.dsn)
        assert {count for _, count in session.execute(per_device)} == {1}


def _committed_consistently(factory: sessionmaker[Session], action_id: int) -> int:
    """Progress and line outcomes were committed together; returns the lines done."""
    with factory() as session:
        action = session.get(FactoryAction, action_id)
        assert action is not None
        lines = select(func.count()).select_from(ActionLine).where(ActionLine.action_id == action_id)
        assert session.scalar(lines) == action.lines_done
        assert action.status == "pending"  # handed back to the queue, not left "running"
        return action.lines_done


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_serve_alone_ends_every_process_it_started(
    world: World,
    fleet: list[str],
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    server = _server(database_url, master_key_file, tmp_path, background_workers=True)
    server.start()
    try:
        assert server.process is not None
        action_id = _until_busy(server, world, fleet, session_factory)
        tree = descendants(server.process.pid)
        assert len(tree) >= 3, "expected two web workers and the background worker"
        _stops_within(server.process, tree, signum)
        server.process = None
        assert 0 < _committed_consistently(session_factory, action_id) < FLEET
        server.start()
        wait_for_action(
            server, world, action_id, lambda a: a["status"] != "pending" != "running", timeout=180
        )
        wait_for_action(
            server, world, action_id, lambda a: a["status"] in ("success", "failure"), timeout=180
        )
    finally:
        server.stop()
    _each_line_once(session_factory, action_id)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_a_worker_alone_stops_it_and_another_resumes(
    world: World,
    fleet: list[str],
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
    signum: signal.Signals,
) -> None:
    server = _server(database_url, master_key_file, tmp_path)  # web only
    server.start()
    worker = server.worker()
    try:
        action_id = _until_busy(server, world, fleet, session_factory)
        _stops_within(worker, descendants(worker.pid), signum)
        assert 0 < _committed_consistently(session_factory, action_id) < FLEET
        worker = server.worker()
        wait_for_action(
            server, world, action_id, lambda a: a["status"] in ("success", "failure"), timeout=180
        )
    finally:
        worker.kill()
        worker.wait(10)
        server.stop()
    _each_line_once(session_factory, action_id)


def test_after_sigkill_of_serve_no_child_outlives_it(
    world: World,
    fleet: list[str],
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
) -> None:
    server = _server(database_url, master_key_file, tmp_path, background_workers=True)
    server.start()
    try:
        assert server.process is not None
        action_id = _until_busy(server, world, fleet, session_factory)
        tree = descendants(server.process.pid)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(5)
        server.process = None
        left = wait_until_gone(tree, STOP_SECONDS)
        kill_all(left)
        assert not left, f"children outlived serve by {STOP_SECONDS}s: {sorted(left)}"
        server.start()  # the dead runner's action is taken over once it is stale
        wait_for_action(
            server, world, action_id, lambda a: a["status"] in ("success", "failure"), timeout=180
        )
    finally:
        server.stop()
    _each_line_once(session_factory, action_id)


def test_a_child_started_as_serve_dies_ends_at_once() -> None:
    """A web worker that uvicorn started just before ``serve`` was killed comes up with
    no parent-death signal to wait for: it must end by itself, not live on."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a serve process that has died (and been reaped)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from devicefactory.processes import end_with_serve; "
            "end_with_serve(); time.sleep(60)",
        ],
        env={**os.environ, "DEVICEFACTORY_SERVE_PID": str(gone.pid)},
    )
    try:
        child.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        pytest.fail(f"a child of a dead serve lived on for {STOP_SECONDS}s")
    assert child.returncode == -signal.SIGTERM
