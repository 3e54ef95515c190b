"""The device export (``GET /devicefactory/v1/devices.csv``) of 1,000,000 devices on SQLite.

Run alone: ``python -m bench.export``. Uses the search benchmark's cached fleet
(``bench/search.py``), exports every device as its Ayla::Admin through ``devicefactory
serve`` (one web worker), and reports rows per second and the server's peak resident
memory (every process of its group, sampled every 100 ms) against its memory before the
export: the export reads a page at a time, so memory must not grow with the rows.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import search
from bench.keycache import MASTER_KEY_FILE
from bench.report import Check, write_alone_run
from bench.server import devicefactory_server
from bench.world import PASSWORD

EXPORT_PATH = "/devicefactory/v1/devices.csv"
TARGET_ROWS_PER_S = 20_000.0
TARGET_RSS_GROWTH_MB = 100.0


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the process group ``pgid`` (Linux /proc)."""
    total_kb = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            with open(f"/proc/{entry}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total_kb / 1024


class PeakSampler(threading.Thread):
    """The highest ``group_rss_mb`` seen while it runs."""

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid, self.peak, self._done = pgid, 0.0, threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.1):
            self.peak = max(self.peak, group_rss_mb(self.pgid))

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def measure(url: str, workdir: Path) -> dict[str, float]:
    """One full export: rows, seconds, the server's memory before and at its peak."""
    with devicefactory_server(workdir, MASTER_KEY_FILE, web_workers=1, url=url) as server:
        assert server.process is not None
        pgid = os.getpgid(server.process.pid)
        with httpx.Client(base_url=server.url, timeout=120) as client:
            signed = client.post(
                "/users/sign_in.json",
                json={"user": {"email": search.ADMIN_EMAIL, "password": PASSWORD}},
            )
            signed.raise_for_status()
            headers = {"Authorization": f"auth_token {signed.json()['access_token']}"}
            # Warm up (imports, first queries) so that "before" is the server at rest.
            client.get(EXPORT_PATH, params={"dsn": "AC000W00000001*"}, headers=headers).raise_for_status()
            before = group_rss_mb(pgid)
            sampler = PeakSampler(pgid)
            sampler.start()
            started, rows, size = time.perf_counter(), -1, 0  # the header is not a row
            with client.stream("GET", EXPORT_PATH, headers=headers) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    rows += chunk.count(b"\n")
                    size += len(chunk)
            seconds = time.perf_counter() - started
            peak = max(sampler.stop(), before)
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "megabytes": round(size / 1e6, 1),
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(peak - before, 1),
    }


def run() -> dict[str, Any]:
    """Export the SQLite fleet once; print one line and return the figures."""
    url = search.ensure_sqlite()
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        figures = measure(url, Path(tmp))
    if figures["rows"] != search.FLEET:
        raise RuntimeError(f"the export held {figures['rows']} rows, not {search.FLEET}")
    checks = [
        Check("export rows/s (sqlite)", figures["rows_per_s"], TARGET_ROWS_PER_S, "rows/s"),
        Check("export RSS growth (sqlite)", figures["rss_growth_mb"], TARGET_RSS_GROWTH_MB, "MB", False),
    ]
    print(
        f"export ({figures['rows']:,} devices, {figures['megabytes']} MB CSV): "
        f"{figures['rows_per_s']:,} rows/s in {figures['seconds']} s {checks[0].verdict()}; server RSS "
        f"{figures['rss_before_mb']} -> peak {figures['rss_peak_mb']} MB "
        f"(+{figures['rss_growth_mb']} MB) {checks[1].verdict()}"
    )
    return {"sqlite": figures, "checks": [check.as_dict() for check in checks]}


if __name__ == "__main__":
    begun = datetime.now(UTC)
    print(f"results: {write_alone_run('export', run(), begun)}")
