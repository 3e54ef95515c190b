"""Servers under test, each a subprocess in its own process group on a free local port."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx

BARE_APP = "bench.bare_app:app"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A local TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """Start a server, wait until it answers HTTP, stop its whole process group on exit."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_file: Path, port: int) -> None:
        self.args = args
        self.env = env
        self.log_file = log_file
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        """Start the server and wait until it answers."""
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the server, whatever happened."""
        self.stop()

    def _wait_ready(self, timeout: float = 60) -> None:
        """Poll until any HTTP answer comes; fail with the log's tail if none does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)  # any answer means it is up
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log_file.read_text()[-2000:]}")

    def cpu_seconds(self) -> float:
        """CPU time used so far by every live process of the server's group (Linux /proc)."""
        if self.process is None:
            return math.nan
        return sum(_group_ticks(self.process.pid)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL it if it has not ended after 15 s."""
        if self.process is None:
            return
        # The group holds uvicorn's supervisor and its web worker processes.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


def devicefactory_server(
    workdir: Path,
    master_key_file: Path,
    *,
    web_workers: int,
    background_workers: bool = False,
    url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> ServerProcess:
    """``devicefactory serve`` with the key pool filler off.

    On the SQLite database in ``workdir`` unless ``url`` names another database; with
    ``background_workers`` the action runner runs too (in serve's worker process).
    """
    port = free_port()
    env = {
        **os.environ,
        "DEVICEFACTORY_DATABASE_URL": url or database_url(workdir),
        "DEVICEFACTORY_MASTER_KEY_FILE": str(master_key_file),
        "DEVICEFACTORY_KEY_POOL_TARGET": "0",
        **(extra_env or {}),
    }
    args = [sys.executable, "-m", "devicefactory", "serve", "--port", str(port)]
    if not background_workers:
        args.append("--no-workers")
    args += ["--web-workers", str(web_workers)]
    return ServerProcess(args, env=env, log_file=workdir / "server.log", port=port)


def bare_server(workdir: Path, *, workers: int) -> ServerProcess:
    """The bare FastAPI app under uvicorn with the same server options as ``serve``."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", BARE_APP, "--port", str(port), "--workers", str(workers)]
    args += ["--no-access-log", "--log-level", "warning"]
    return ServerProcess(args, env=dict(os.environ), log_file=workdir / "bare.log", port=port)


def database_url(workdir: Path) -> str:
    """The SQLite database of a benchmark's work directory."""
    return f"sqlite:///{workdir / 'bench.db'}"


def _group_ticks(group: int) -> Iterator[int]:
    """utime + stime of each process in process group ``group``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after "(comm)": state, ppid, pgrp, ... utime is 14th, stime 15th overall.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == group:
            yield int(fields[11]) + int(fields[12])
