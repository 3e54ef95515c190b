"""``serve`` runs its background workers in a child process that never outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.live import LiveServer


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # Field 4 of /proc/PID/stat is the parent's pid (after "pid (name) state").
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_the_worker_process_stops_with_serve(
    database_url: str, master_key_file: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    server = LiveServer(database_url, master_key_file, tmp_path, background_workers=True)
    server.start()
    assert server.process is not None
    try:
        deadline = time.monotonic() + 30
        while not (workers := _children(server.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers, "serve started no worker process"
        os.kill(server.process.pid, signum)  # the serving process alone, not its group
        server.process.wait(30)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), "the worker process outlived serve"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process = None
