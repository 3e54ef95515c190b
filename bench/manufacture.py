"""Manufacture requests/s on a running server against a bare FastAPI JSON POST endpoint.

Run alone: ``python -m bench.manufacture``. Both servers run under uvicorn with 2
web workers on this machine and are loaded by wrk with 16 connections for a fixed
time, alternating round by round. Every manufacture request goes to a device of
its own (see wrk.lua), so each does the full work of a first manufacture; the
warm-up's rate sizes how many devices each timed round gets.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bench.keycache import MASTER_KEY_FILE, cached_pairs, stock_pool
from bench.loadgen import WrkResult, ensure_wrk, run_wrk
from bench.report import Check, median
from bench.server import ServerProcess, bare_server, database_url, devicefactory_server
from bench.world import MODEL, create_module_maker, prepare_database, reserve, sign_in

WEB_WORKERS = 2
CONNECTIONS = 16
WRK_THREADS = 2
SECONDS = 5
WARM_UP_SECONDS = 1
ROUNDS = 3
RESERVE_BATCH = 1000
WARM_UP_DEVICES = 2000
# Devices per timed round: twice what the warm-up rate needs, within these bounds.
MIN_DEVICES, MAX_DEVICES = 1000, 20000
TARGET_RATIO = 0.35
TARGET_P99_MS = 20.0


@dataclass(frozen=True)
class Measured:
    """One wrk run and the server CPU it cost."""

    wrk: WrkResult
    server_cpu_ms_per_request: float


class DeviceSupply:
    """Reserves devices through the API, restocking the key pool from the cache first."""

    def __init__(self, server: ServerProcess, factory: sessionmaker[Session], workdir: Path) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=120)
        self.headers = sign_in(self.client)
        self.factory = factory
        self.workdir = workdir
        self.pairs = cached_pairs(RESERVE_BATCH)
        self.files = 0

    @property
    def authorization(self) -> str:
        """The Authorization header value that wrk sends."""
        return self.headers["Authorization"]

    def dsn_file(self, count: int) -> Path:
        """Reserve ``count`` devices and write their DSNs to a new file, one per line."""
        dsns: list[str] = []
        while len(dsns) < count:
            batch = min(RESERVE_BATCH, count - len(dsns))
            stock_pool(self.factory, self.pairs[:batch])
            dsns += reserve(self.client, self.headers, batch)
        self.files += 1
        path = self.workdir / f"dsns-{self.files}.txt"
        path.write_text("\n".join(dsns) + "\n")
        return path

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()


def load(server: ServerProcess, seconds: int, dsn_file: Path | None = None, auth: str = "-") -> Measured:
    """One wrk run: manufacture when given a DSN file, else the bare /echo."""
    before = server.cpu_seconds()
    result = run_wrk(
        server.url,
        seconds=seconds,
        connections=CONNECTIONS,
        threads=WRK_THREADS,
        dsn_file=dsn_file,
        authorization=auth,
        model=MODEL,
    )
    cpu_ms = (server.cpu_seconds() - before) * 1000 / max(result.requests, 1)
    return Measured(result, cpu_ms)


def devices_per_round(warm_up: WrkResult) -> int:
    """Twice what a timed round needs at the warm-up's rate, within bounds."""
    if warm_up.threads_out_of_devices:
        return MAX_DEVICES  # faster than the warm-up could show
    return max(MIN_DEVICES, min(MAX_DEVICES, math.ceil(warm_up.rate * SECONDS * 2)))


def timed_rounds(
    service: ServerProcess, bare: ServerProcess, supply: DeviceSupply
) -> list[tuple[Measured, Measured]]:
    """Warm both servers up, then alternate timed rounds: (manufacture, bare) per round."""
    warm_up = load(service, WARM_UP_SECONDS, supply.dsn_file(WARM_UP_DEVICES), supply.authorization)
    load(bare, WARM_UP_SECONDS)
    files = [supply.dsn_file(devices_per_round(warm_up.wrk)) for _ in range(ROUNDS)]
    rounds = []
    for index, dsn_file in enumerate(files):
        rounds.append((load(service, SECONDS, dsn_file, supply.authorization), load(bare, SECONDS)))
        print(f"  round {index + 1}: {describe(rounds[-1][0])}; bare {describe(rounds[-1][1])}", flush=True)
    return rounds


def measure() -> list[tuple[Measured, Measured]]:
    """A fresh database, the service and the bare app side by side, then the timed rounds."""
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        workdir = Path(tmp)
        factory = prepare_database(database_url(workdir))
        create_module_maker(factory)
        with (
            devicefactory_server(workdir, MASTER_KEY_FILE, web_workers=WEB_WORKERS) as service,
            bare_server(workdir, workers=WEB_WORKERS) as bare,
        ):
            supply = DeviceSupply(service, factory, workdir)
            try:
                return timed_rounds(service, bare, supply)
            finally:
                supply.close()


def describe(measured: Measured) -> str:
    """One run as printed in a round line, flagged when it is not clean."""
    result = measured.wrk
    text = (
        f"{result.rate:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"server CPU {measured.server_cpu_ms_per_request:.2f} ms/req"
    )
    if not result.clean:
        text += (
            f" [INVALID: {result.non_2xx} non-2xx, {result.socket_errors} socket errors, "
            f"{result.threads_out_of_devices} wrk threads ran out of devices]"
        )
    return text


def run() -> dict[str, Any]:
    """Measure, print one line and return the figures."""
    rounds = measure()
    made, echoed = [m for m, _ in rounds], [e for _, e in rounds]
    rate, bare_rate = median([m.wrk.rate for m in made]), median([e.wrk.rate for e in echoed])
    p99 = median([m.wrk.p99_ms for m in made])
    cpu = median([m.server_cpu_ms_per_request for m in made])
    bare_cpu = median([e.server_cpu_ms_per_request for e in echoed])
    checks = [
        Check("manufacture / bare FastAPI req/s", rate / bare_rate, TARGET_RATIO),
        Check("manufacture p99", p99, TARGET_P99_MS, "ms", higher_is_better=False),
    ]
    valid = all(m.wrk.clean for m in made + echoed)
    print(
        f"manufacture: {rate:.0f} req/s, p99 {p99:.1f} ms (target {checks[1].target_text()}) "
        f"{checks[1].verdict()}; bare FastAPI: {bare_rate:.0f} req/s; ratio {checks[0].value:.2f} "
        f"(target {checks[0].target_text()}) {checks[0].verdict()}; server CPU/request "
        f"{cpu:.2f} ms vs {bare_cpu:.3f} ms bare{'' if valid else ' [INVALID RUN]'}"
    )
    return {
        "load_generator": f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{SECONDS}s, {ROUNDS} alternating rounds",
        "web_workers": WEB_WORKERS,
        "valid": valid,
        "rounds": [{"manufacture": asdict(m), "bare": asdict(e)} for m, e in rounds],
        "manufacture_req_per_s": rate,
        "bare_req_per_s": bare_rate,
        "manufacture_p99_ms": p99,
        "manufacture_p50_ms": median([m.wrk.p50_ms for m in made]),
        "server_cpu_ms_per_request": {"manufacture": cpu, "bare": bare_cpu},
        "checks": [check.as_dict() for check in checks],
    }


if __name__ == "__main__":
    run()
