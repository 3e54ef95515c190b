"""A real ``devicefactory serve`` process on a free local port, for tests that need
several concurrent clients, the background workers, or a crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


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
            "DEVICEFACTORY_UPLOAD_DIR": str(workdir / "uploads"),
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
