"""A real ``devicefactory serve`` process on a free local port, for tests that need
several concurrent clients, the background workers, or a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.db import session_scope
from devicefactory.devices import queries
from devicefactory.keys.crypto import SealedKeyPair
from tests.world import World


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    def __init__(
        self,
        database_url: str,
        master_key_file: Path,
        workdir: Path,
        *,
        web_workers: int = 1,
        background_workers: bool = False,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        https_client: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if https_client else 'http'}://127.0.0.1:{self.port}"
        self.client_options = https_client or {}
        self.env = {
            **os.environ,
            "DEVICEFACTORY_DATABASE_URL": database_url,
            "DEVICEFACTORY_MASTER_KEY_FILE": str(master_key_file),
            "DEVICEFACTORY_KEY_POOL_TARGET": "0",
            **(extra_env or {}),
        }
        self.args = [sys.executable, "-m", "devicefactory", "serve", "--port", str(self.port)]
        self.args += ["--web-workers", str(web_workers)]
        if not background_workers:
            self.args.append("--no-workers")
        self.args += extra_args
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with (self.workdir / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, **self.client_options).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start: {(self.workdir / 'server.log').read_text()[-2000:]}")

    def worker(self, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``devicefactory worker`` on the same database, in a process group of its own."""
        with (self.workdir / "worker.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "devicefactory", "worker"],
                env={**self.env, **(extra_env or {})},
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
            self.process = None


# --- a large upload to work while processes are stopped and killed ------------------------


def reserved_fleet(
    factory: sessionmaker[Session], oem_id: str, pair: SealedKeyPair, count: int, first: int = 1
) -> list[str]:
    """``count`` reserved AY001MTP1 devices from ``first`` on (outside the DSN counter's
    range when reserves run beside them); the upload path never reads keys, so they share one."""
    dsns = [f"AC000W{n:09d}" for n in range(first, first + count)]
    now = datetime.now(UTC)
    with session_scope(factory) as session:
        queries.insert_devices(
            session,
            [
                {
                    "dsn": dsn,
                    "model": "AY001MTP1",
                    "status": "reserved",
                    "public_key": pair.public_pem,
                    "sealed_private_key": pair.sealed_private,
                    "reserved_by_oem_id": oem_id,
                    "reserved_at": now,
                    "datapoint_count": 0,
                    "last_job_failed": False,
                }
                for dsn in dsns
            ],
        )
    return dsns


def upload_log(server: LiveServer, world: World, dsns: list[str], user: str = "mm") -> int:
    """A manufacture log with a line per DSN (mac n, hwsig sig-n); returns the action id."""
    content = "".join(
        f"2,1318462302,2016/11/24 10:34:23 UTC,label,0,AY001MTP1,{dsn},{n:012x},WD101a,p{n},sig-{n},\n"
        for n, dsn in enumerate(dsns, start=1)
    ).encode()
    response = httpx.post(
        f"{server.url}/devicefactory/v1/factory_actions",
        files={"file": ("line.log", content, "text/plain")},
        data={"type": "manufacture"},
        headers=world.headers(user),
        timeout=60,
    )
    assert response.status_code == 202, response.text
    action_id: int = response.json()["factory_action"]["id"]
    return action_id


def wait_for_action(
    server: LiveServer,
    world: World,
    action_id: int,
    ready: Callable[[dict[str, Any]], bool],
    timeout: float = 120,
) -> dict[str, Any]:
    """Poll the action until ``ready`` says so; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{server.url}/devicefactory/v1/factory_actions/{action_id}",
            headers=world.headers("mm"),
            timeout=10,
        )
        body: dict[str, Any] = response.json()["factory_action"]
        if ready(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"action {action_id} did not get there in {timeout}s")


# --- process trees ------------------------------------------------------------------------


def _parent_of(pid: int) -> int | None:
    try:
        # Field 4 of /proc/PID/stat is the parent's pid (after "pid (name) state").
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent_of(int(entry.name))) is not None:
            parents[int(entry.name)] = parent
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return {p for p in found if alive(p)}


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until_gone(pids: set[int], seconds: float) -> set[int]:
    """Wait up to ``seconds`` for every process of ``pids`` to end; the ones still alive."""
    deadline = time.monotonic() + seconds
    while (left := {p for p in pids if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
