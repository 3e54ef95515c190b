"""Manufacture requests/s on a running server against a bare FastAPI JSON POST endpoint.

Run alone: ``python -m bench.manufacture``. Both servers run under uvicorn with 2
web workers on this machine and are loaded by wrk with 16 connections for a fixed
time, alternating round by round. Every manufacture request goes to a device of
its own (see wrk.lua), so each does the full work of a first manufacture; the
warm-up's rate sizes how many devices each timed round gets.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
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
# Targets as ratios to the bare FastAPI POST of the same run (machine speed varies 3x).
TARGET_CPU_RATIO = 12.0  # server CPU per manufacture / per bare POST
TARGET_P99_RATIO = 6.0  # p99 at 16 connections / the bare p99
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "devicefactory_bench_manufacture"


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


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh PostgreSQL database for the run, dropped after; None when no server answers."""
    admin_url = make_url(PG_ADMIN_URL)
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{PG_DATABASE}"')
    except Exception as error:  # no PostgreSQL here: the SQLite figures stand alone
        print(f"  (no PostgreSQL run: {type(error).__name__})")
        yield None
        return
    try:
        yield admin_url.set(database=PG_DATABASE).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.dispose()


def measure(url: str | None = None) -> list[tuple[Measured, Measured]]:
    """A fresh database (SQLite, or ``url``), the service and the bare app side by side, then
    the timed rounds."""
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        workdir = Path(tmp)
        factory = prepare_database(url or database_url(workdir))
        create_module_maker(factory)
        with (
            devicefactory_server(workdir, MASTER_KEY_FILE, web_workers=WEB_WORKERS, url=url) as service,
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


def summarize(
    engine: str, rounds: list[tuple[Measured, Measured]], *, targeted: bool = True
) -> dict[str, Any]:
    """Medians of the rounds, the ratios to the bare POST, one printed line. The targets are
    SQLite's (``targeted``); PostgreSQL's ratios are measured and printed, not checked."""
    made, echoed = [m for m, _ in rounds], [e for _, e in rounds]
    rate, bare_rate = median([m.wrk.rate for m in made]), median([e.wrk.rate for e in echoed])
    p99, bare_p99 = median([m.wrk.p99_ms for m in made]), median([e.wrk.p99_ms for e in echoed])
    cpu = median([m.server_cpu_ms_per_request for m in made])
    bare_cpu = median([e.server_cpu_ms_per_request for e in echoed])
    checks = [
        Check(
            f"{engine}: manufacture / bare server CPU per request",
            cpu / bare_cpu,
            TARGET_CPU_RATIO,
            higher_is_better=False,
        ),
        Check(f"{engine}: manufacture / bare p99", p99 / bare_p99, TARGET_P99_RATIO, higher_is_better=False),
    ]
    valid = all(m.wrk.clean for m in made + echoed)

    def verdict(check: Check) -> str:
        if not targeted:
            return "(measured only)"
        return f"(target {check.target_text()}) {check.verdict()}"

    print(
        f"manufacture on {engine}: {rate:.0f} req/s (bare {bare_rate:.0f}); server CPU/request "
        f"{cpu:.2f} ms vs {bare_cpu:.3f} ms bare = {checks[0].value:.1f}x {verdict(checks[0])}; "
        f"p99 {p99:.1f} ms vs {bare_p99:.1f} ms bare = {checks[1].value:.1f}x {verdict(checks[1])}"
        f"{'' if valid else ' [INVALID RUN]'}"
    )
    return {
        "valid": valid,
        "rounds": [{"manufacture": asdict(m), "bare": asdict(e)} for m, e in rounds],
        "manufacture_req_per_s": rate,
        "bare_req_per_s": bare_rate,
        "manufacture_p99_ms": p99,
        "bare_p99_ms": bare_p99,
        "manufacture_p50_ms": median([m.wrk.p50_ms for m in made]),
        "server_cpu_ms_per_request": {"manufacture": cpu, "bare": bare_cpu},
        "ratios_to_bare": {"server_cpu": checks[0].value, "p99": checks[1].value},
        "checks": [check.as_dict() for check in checks] if targeted else [],
    }


def run() -> dict[str, Any]:
    """Measure on SQLite, then on PostgreSQL when a server answers; print and return."""
    results: dict[str, Any] = {
        "load_generator": f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{SECONDS}s, {ROUNDS} alternating rounds",
        "web_workers": WEB_WORKERS,
        "sqlite": summarize("SQLite", measure()),
    }
    with postgres_database() as url:
        if url is not None:
            results["postgresql"] = summarize("PostgreSQL", measure(url), targeted=False)
    results["checks"] = [
        c for engine in ("sqlite", "postgresql") for c in results.get(engine, {}).get("checks", [])
    ]
    return results


if __name__ == "__main__":
    run()
