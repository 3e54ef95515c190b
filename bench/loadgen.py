"""The HTTP load generator: ``wrk`` (C, event-driven), installed from Debian if missing.

wrk rather than a Python generator: it needs a fraction of the CPU that a Python
client would, and the generator shares the machine's 2 cores with the server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).parent / "wrk.lua"
MARKER = "BENCH-JSON "


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    threads_out_of_devices: int

    @property
    def rate(self) -> float:
        """Requests per second over the whole run."""
        return self.requests / self.seconds

    @property
    def clean(self) -> bool:
        """Every request answered 2xx and no thread ran out of devices."""
        return self.non_2xx == 0 and self.socket_errors == 0 and self.threads_out_of_devices == 0


def ensure_wrk() -> str:
    """Path of wrk; as root, ``apt-get install`` it (refreshing the package lists once if needed)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError("wrk is needed: install it (Debian/Ubuntu: apt-get install wrk)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    print("  installing wrk with apt-get ...", flush=True)
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    return shutil.which("wrk") or "wrk"


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int,
    dsn_file: Path | None = None,
    authorization: str | None = None,
    model: str = "-",
) -> WrkResult:
    """One closed-loop wrk run against ``url`` (see wrk.lua for the requests it sends)."""
    command = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(SCRIPT), url, "--", str(dsn_file or "-"), authorization or "-", model, str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    output = done.stdout
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr}{output}")
    line = next((line for line in output.splitlines() if line.startswith(MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    return _parse(json.loads(line[len(MARKER) :]))


def _parse(raw: dict[str, float]) -> WrkResult:
    """wrk.lua's JSON line (microseconds) as a WrkResult (milliseconds)."""
    return WrkResult(
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        non_2xx=int(raw["non_2xx"]),
        socket_errors=int(raw["socket_errors"]),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        threads_out_of_devices=int(raw["threads_out_of_devices"]),
    )
