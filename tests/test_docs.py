"""The docs run: every shell example of README.md and docs/*.md, in order per file,
against a live server holding the ``make run`` demo data.

A block that cannot run against a server (``make run``, install steps, systemd, a
synopsis) says so on the line before its fence::

    <!-- docs-test: skip (why) -->

Each file's blocks run in one bash process (so a variable set in one block is there in the
next), each block under ``set -euo pipefail``, in a working directory of its own with a
fresh HOME; ``http://127.0.0.1:8000`` (the demo's address) becomes the live server's.
Every ``curl`` must fail on an HTTP error (``-f`` or ``--fail-with-body``), so a doc whose
calls drift from the service fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.live import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO_URL = "http://127.0.0.1:8000"
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
SKIP_MARKER = re.compile(r"^<!--\s*docs-test:\s*skip\b.*-->$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
# Skipped blocks must stay the exception: at most this many per file.
MAX_SKIPPED = {"README.md": 3, "docs/deployment.md": 12, "docs/performance.md": 1}
MAX_SKIPPED_ELSEWHERE = 2
# Files whose shell blocks are neither run nor allowed to grow in number (none left: every
# block is marked or runs).
NOT_YET_MARKED: dict[str, int] = {}
BLOCK_SECONDS = 60


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    skipped: bool

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[str]:
    return ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def shell_blocks(path: str) -> list[Block]:
    """The fenced shell blocks of a Markdown file, each with its skip marker (or none)."""
    lines = (ROOT / path).read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, language = opening.groups()
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if language in SHELL_LANGUAGES:
            previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
            body = [
                line[len(indent) :] if line.startswith(indent) else line for line in lines[index + 1 : end]
            ]
            if language == "console":  # commands after "$ ", output lines dropped
                body = [line[2:] for line in body if line.startswith("$ ")]
            code = "\n".join(body) + "\n"
            blocks.append(Block(path, index + 1, language, code, bool(SKIP_MARKER.match(previous))))
        index = end + 1
    return blocks


def runnable_files() -> list[str]:
    return [
        path
        for path in doc_files()
        if path not in NOT_YET_MARKED and any(not block.skipped for block in shell_blocks(path))
    ]


def logical_lines(code: str) -> Iterator[str]:
    """Lines with their backslash continuations joined."""
    pending = ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
        else:
            yield pending + line
            pending = ""
    if pending:
        yield pending


def curl_without_fail(code: str) -> list[str]:
    """The curl commands of a block that would not fail on an HTTP error."""
    found = []
    for line in logical_lines(code):
        for match in re.finditer(r"(?:^|[\s|;&($`])curl\s", line):
            try:
                words = shlex.split(line[match.end() :], comments=True)
            except ValueError:  # an unbalanced quote across a heredoc: judge the raw text
                words = line[match.end() :].split()
            options = []
            for word in words:
                if word in {"|", "||", "&&", ";", ")"} or word.startswith("|"):
                    break
                options.append(word)
            fails = any(
                word in {"--fail", "--fail-with-body"}
                or (re.fullmatch(r"-[A-Za-z]+", word) is not None and "f" in word[1:])
                for word in options
            )
            if not fails:
                found.append(line.strip())
    return found


# --- the static checks: markers, skips, curl --------------------------------------------


def test_every_shell_block_runs_or_is_marked() -> None:
    for path in doc_files():
        blocks = shell_blocks(path)
        if path in NOT_YET_MARKED:
            unmarked = [b.where for b in blocks if not b.skipped]
            assert len(unmarked) <= NOT_YET_MARKED[path], (
                f"new shell blocks in {path}: mark them <!-- docs-test: skip (why) --> or make the file run"
            )
        skipped = [b.where for b in blocks if b.skipped]
        assert len(skipped) <= MAX_SKIPPED.get(path, MAX_SKIPPED_ELSEWHERE), f"too many skipped: {skipped}"
    assert {"README.md", "docs/api.md", "docs/client.md"} <= set(runnable_files())


def test_every_curl_fails_on_an_http_error() -> None:
    offenders = [
        f"{block.where}: {line}"
        for path in doc_files()
        for block in shell_blocks(path)
        if not block.skipped and path not in NOT_YET_MARKED
        for line in curl_without_fail(block.code)
    ]
    assert not offenders, "curl without -f/--fail-with-body:\n" + "\n".join(offenders)


def test_the_extractor_sees_markers_and_curl_flags() -> None:
    assert curl_without_fail("curl -s http://x\n") == ["curl -s http://x"]
    assert curl_without_fail("curl -fsS http://x | python3 -c 'print(1)'\n") == []
    assert curl_without_fail("X=$(curl --fail-with-body \\\n  -F file=@a http://x)\n") == []
    assert curl_without_fail("curl -sS -F f=@a http://x\n") != []
    marked = shell_blocks("README.md")
    assert marked[0].skipped
    assert "make run" in marked[0].code
    assert any(not block.skipped for block in marked)


def test_a_failing_block_fails_the_script(tmp_path: Path) -> None:
    blocks = [
        Block("a.md", 1, "sh", "X=$(curl -fsS http://127.0.0.1:8000/nowhere)\n", skipped=False),
        Block("a.md", 5, "sh", "echo never\n", skipped=False),
    ]
    port = free_port()  # nothing listens there
    script = script_of(blocks, f"http://127.0.0.1:{port}")
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode != 0
    assert re.findall(r">>> docs-test block (\S+)", run.stderr) == ["a.md:1"]
    assert "never" not in run.stdout


# --- running them -------------------------------------------------------------------------


@pytest.fixture
def demo_server(
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
    session_factory: sessionmaker[Session],
    pool: Callable[[int], None],
) -> Iterator[tuple[LiveServer, Path]]:
    """A server with background workers (uploads are worked) on the demo data, as ``make run``
    makes it, and a working directory holding ``var/demo`` as the checkout would."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    pool(30)
    server = LiveServer(database_url, master_key_file, tmp_path, background_workers=True)
    demo = subprocess.run(
        [sys.executable, "-m", "devicefactory", "demo", "--dir", "var/demo", "--base-url", server.url],
        env=server.env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "loaded demo data" in demo.stdout
    server.start()
    yield server, workdir
    server.stop()


def script_of(blocks: list[Block], url: str) -> str:
    parts = ["#!/usr/bin/env bash"]
    for block in blocks:
        parts.append(f"echo '>>> docs-test block {block.where}' >&2")
        parts.append("set -euo pipefail")
        parts.append(block.code.replace(DEMO_URL, url))
    parts.append("echo '>>> docs-test done' >&2")
    return "\n".join(parts) + "\n"


@pytest.mark.slow
@pytest.mark.parametrize("path", runnable_files())
def test_doc_runs(path: str, demo_server: tuple[LiveServer, Path], tmp_path: Path) -> None:
    server, workdir = demo_server
    blocks = [block for block in shell_blocks(path) if not block.skipped]
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DEVICEFACTORY_") or key == "DEVICEFACTORY_TEST_DATABASE_URL"
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        NO_COLOR="1",
    )
    (workdir / "docs.sh").write_text(script_of(blocks, server.url))
    try:
        run = subprocess.run(
            ["bash", "docs.sh"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=BLOCK_SECONDS * len(blocks),
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"{path} timed out:\n{expired.stderr!s}")
    reached = re.findall(r">>> docs-test block (\S+)", run.stderr)
    assert run.returncode == 0, (
        f"{path}: the block at {reached[-1] if reached else '?'} failed (exit {run.returncode})\n"
        f"--- stdout\n{run.stdout[-4000:]}\n--- stderr\n{run.stderr[-4000:]}"
    )
    assert ">>> docs-test done" in run.stderr
    assert len(reached) == len(blocks)
