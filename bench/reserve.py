"""reserve(1) and reserve(1000) latency on a running server with a warm key pool.

Run alone: ``python -m bench.reserve``. Reference: ``GET /healthz`` (one trivial
database round trip) on the same server, sampled between the reserves.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.keycache import MASTER_KEY_FILE, cached_pairs, stock_pool
from bench.report import Check, percentile
from bench.server import database_url, devicefactory_server
from bench.world import MODEL, RESERVE_PATH, create_module_maker, prepare_database, sign_in

SMALL_RUNS = 30
LARGE_RUNS = 10
LARGE = 1000
WARM_UP = (1, 1, 1, 10)  # counts reserved before timing: first-request costs are not the path
SMALL_KEYS = SMALL_RUNS + sum(WARM_UP)
TARGET_SMALL_MS = 15.0
TARGET_LARGE_MS = 250.0


def timed_ms(call: Callable[[], httpx.Response]) -> float:
    """Wall time of one request until its whole body is read; it must answer 200."""
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def measure(client: httpx.Client, restock: Callable[[], None]) -> dict[str, list[float]]:
    """Latency samples (ms) of healthz, reserve(1) and reserve(1000), interleaved."""
    headers = sign_in(client)

    def reserve(count: int) -> httpx.Response:
        """POST a reserve of ``count`` devices."""
        return client.post(RESERVE_PATH, json={"model": MODEL, "count": count}, headers=headers)

    def health() -> httpx.Response:
        """GET /healthz, the reference."""
        return client.get("/healthz")

    for count in WARM_UP:
        timed_ms(functools.partial(reserve, count))
    samples: dict[str, list[float]] = {"healthz": [], "reserve_1": [], "reserve_1000": []}
    for _ in range(SMALL_RUNS):
        samples["healthz"].append(timed_ms(health))
        samples["reserve_1"].append(timed_ms(lambda: reserve(1)))
    for _ in range(LARGE_RUNS):
        restock()
        samples["healthz"].append(timed_ms(health))
        samples["reserve_1000"].append(timed_ms(lambda: reserve(LARGE)))
    return samples


def serve_and_measure() -> dict[str, list[float]]:
    """A fresh database and server (one web worker), warm pool, then the samples."""
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        workdir = Path(tmp)
        factory = prepare_database(database_url(workdir))
        create_module_maker(factory)
        pairs = cached_pairs(max(SMALL_KEYS, LARGE))
        stock_pool(factory, pairs[:SMALL_KEYS])
        with (
            devicefactory_server(workdir, MASTER_KEY_FILE, web_workers=1) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            return measure(client, lambda: stock_pool(factory, pairs[:LARGE]))


def run() -> dict[str, Any]:
    """Measure, print one line and return the figures."""
    samples = serve_and_measure()
    stats = {name: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for name, v in samples.items()}
    health = stats["healthz"]["p50"]
    checks = [
        Check("reserve(1) p50", stats["reserve_1"]["p50"], TARGET_SMALL_MS, "ms", higher_is_better=False),
        Check(
            "reserve(1000) p50", stats["reserve_1000"]["p50"], TARGET_LARGE_MS, "ms", higher_is_better=False
        ),
    ]
    parts = [
        f"{check.name} {check.value:.1f} ms, p95 {stats[key]['p95']:.1f} ms, "
        f"{check.value / health:.1f}x healthz (target p50 {check.target_text()}) {check.verdict()}"
        for check, key in zip(checks, ("reserve_1", "reserve_1000"), strict=True)
    ]
    print(
        f"reserve: {'; '.join(parts)}; GET /healthz p50 {health:.2f} ms, p95 {stats['healthz']['p95']:.2f} ms"
    )
    return {
        "samples_ms": samples,
        "stats_ms": stats,
        "ratio_to_healthz": {key: stats[key]["p50"] / health for key in ("reserve_1", "reserve_1000")},
        "checks": [check.as_dict() for check in checks],
    }


if __name__ == "__main__":
    run()
