"""What the figures were measured on: hardware, versions, code revision, machine load."""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.backends.openssl import backend

from bench.server import REPO_ROOT


def describe() -> dict[str, Any]:
    """Hardware, versions, git revision and load average, for results/latest.json."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(_memory_kib() / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cryptography": f"{cryptography.__version__} ({backend.openssl_version_text()})",
        "system_openssl": _output(["openssl", "version"]),
        "wrk": _output(["wrk", "--version"]).splitlines()[0] if shutil.which("wrk") else "absent",
        "git_head": _output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"]),
        "uncommitted_files": len(
            _output(
                ["git", "--no-optional-locks", "-C", str(REPO_ROOT), "status", "--porcelain"]
            ).splitlines()
        ),
        "load_average": os.getloadavg(),
    }


def _cpu_model() -> str:
    """lscpu's model name."""
    for line in _output(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_kib() -> int:
    """Total memory from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _output(command: list[str]) -> str:
    """stdout (or stderr: wrk prints its version there) of a command, '' if it cannot run."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()
