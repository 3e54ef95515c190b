"""Helpers for the ``devicefactory-client`` tests: a private config dir per test, the client run
in-process or as a process (on a pipe or a terminal), and a scripted stand-in service that
records every request (for what a real server does not show, such as request headers)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from devicefactory import client

CLIENT_VARIABLES = (
    "DEVICEFACTORY_ENV",
    "DEVICEFACTORY_PROFILE",
    "DEVICEFACTORY_TOKEN",
    "DEVICEFACTORY_TOKEN_FILE",
    "DEVICEFACTORY_CA_CERT",
)
MAC_BASE = 0x1DEE6EA20000


def isolate_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh HOME and XDG_CONFIG_HOME; returns the client's config dir (not yet created)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    for name in CLIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home / "xdg" / "devicefactory"


@dataclass
class Floor:
    """The client on a station: ``run`` in this process, ``spawn`` as a process of its own."""

    url: str
    runner: CliRunner = field(default_factory=CliRunner)

    def run(self, *args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = self.runner.invoke(client.main, list(args), input=stdin, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    def out(self, *args: str, code: int = 0) -> str:
        return self.run(*args, code=code).output

    def sign_in(self, email: str, password: str, *, profile: str | None = None) -> str:
        chosen = ["--profile", profile] if profile else []
        return self.out(*chosen, "sign-in", "--env", self.url, "--email", email, "--password", password)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "devicefactory.client", *args]


def spawn(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The client as a process on pipes (no terminal anywhere)."""
    return subprocess.run(command(*args), input=stdin, capture_output=True, text=True, timeout=timeout)


def spawn_binary(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """The client as a process whose stdout is a pipe, read as bytes."""
    return subprocess.run(command(*args), capture_output=True, timeout=timeout)


def on_terminal(*args: str, timeout: float = 60) -> tuple[int, str]:
    """The client as a process whose stdout and stderr are a terminal; (exit code, what it showed)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    process = subprocess.Popen(
        command(*args), stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout), shown.decode(errors="replace")


def manufacture_fields(n: int) -> list[str]:
    return [
        "model=AY001MTP1",
        f"mac={MAC_BASE + n:012x}",
        f"hwsig=sig-{n}",
        "dom_at=2026/11/22 08:00:00 UTC",
    ]


def journal_lines(config: Path, profile: str = "default") -> list[dict[str, Any]]:
    path = config / "journal" / f"{profile}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --- a scripted stand-in service -----------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict[str, str], Any]


@dataclass
class StandIn:
    """Answers each request with ``script(request)``; keeps every request it saw."""

    script: Callable[[Seen], Answer]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            stand_in.seen.append(seen)
            status, headers, body = stand_in.script(seen)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@contextlib.contextmanager
def stand_in(script: Callable[[Seen], Answer]) -> Iterator[StandIn]:
    """A stand-in service on a free local port, for the duration of the block."""
    fake = StandIn(script)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
