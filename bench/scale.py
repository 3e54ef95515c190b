"""Scale-out on PostgreSQL: what a second worker or web process brings, and per-process sizing figures.

Run alone: ``python -m bench.scale``. Every figure runs the service's own processes
(``devicefactory serve --no-workers`` and ``devicefactory worker``) against databases
of their own on the local PostgreSQL (``BENCH_SCALE_PG_URL``, by default the server's
``postgres`` database, used only to create and drop ``devicefactory_bench_scale*``);
each figure is compared with its reference from the same run:

1. uploads: a 16,000-line manufacture upload, and two 8,000-line uploads sent at once,
   each timed from the POST until every action shows ``success``, with one and with two
   worker processes (a fresh copy of the database each time). One action is worked by
   one runner at a time, so only the two uploads at once can show what a second worker
   brings. Reference: the same with one worker, measured just before or after.
2. reserve(1) and reserve(100) p50 from 4 concurrent clients through two web processes
   (two ``serve --no-workers`` on two ports, clients split between them). Reference: the
   same clients through one of them. The pool holds copies of one cached key pair.
3. key pool fill by two ``devicefactory worker`` processes (one keygen thread each), from
   the pool's growth (``count(*)`` of ``key_pool``). Reference: raw ``cryptography``
   RSA-2048 keygen in one thread per core in this process.
4. requests/s of ``GET /devices/{dsn}`` (authenticated) from 8 connections (``wrk``) on
   one web process and on two. Reference: ``GET /healthz`` on one.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bench.keycache import MASTER_KEY_FILE, cached_pairs, stock_pool
from bench.loadgen import MARKER, WrkResult, ensure_wrk
from bench.report import Check, median, percentile, write_alone_run
from bench.server import ServerProcess, devicefactory_server
from bench.upload import ACTIONS_PATH, MODEL, dsn, log_line
from bench.world import RESERVE_PATH, create_module_maker, prepare_database, sign_in
from devicefactory.db import make_engine, make_session_factory, session_scope
from devicefactory.devices import queries as device_queries
from devicefactory.keys.crypto import SealedKeyPair
from devicefactory.tables.actions import FactoryAction
from devicefactory.tables.keys import FillerReport, PoolKey

ADMIN_URL = os.environ.get("BENCH_SCALE_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
DB_PREFIX = "devicefactory_bench_scale"
UPLOAD_LINES = 16_000  # 40,000 would take ~20 s a measurement on PostgreSQL (~2,000 lines/s)
UPLOAD_ROUNDS = 3  # each round: one upload, then two at once, each with 1 and 2 workers back to back
ACTION_BATCH_SIZE = 500  # the service's default, set explicitly so the results record it
POLL_SECONDS = 0.2
UPLOAD_TIMEOUT_SECONDS = 120
INSERT_CHUNK = 10_000
RESERVE_CLIENTS = 4
RESERVE_ROUNDS = 3  # each round: one web process and two, in alternating order
RESERVE_PER_CLIENT = {1: 10, 100: 4}  # timed reserves of each count per client and phase
POOL_TARGET = 200
POOL_ROUNDS = 5  # short rounds, alternating: a neighbour's burst then spoils one of five, not one of three
POOL_WORKERS = 2
POOL_TIMEOUT_SECONDS = 60
SETTLE_SECONDS = 3.0  # the pool is settled when its size has not changed for this long
WRK_CONNECTIONS = 4  # per wrk process; two wrk processes run at once
GET_ROUNDS = 3
GET_SECONDS = 4
HEALTHZ_SECONDS = 2
TARGET_FLEET_RATIO = 1.3
TARGET_POOL_RATIO = 0.8
WORKERS_STARTED = "background workers started"
# wrk's default GET with our headers; only the summary is scripted (same JSON as bench/wrk.lua).
WRK_DONE = """
function done(summary, latency, requests)
  io.write(string.format('BENCH-JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n', summary.requests, summary.duration,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""


# --- databases and processes -------------------------------------------------------------


class Databases:
    """The bench's PostgreSQL databases, created from templates and all dropped at the end."""

    def __init__(self) -> None:
        self.admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` on the same server."""
        return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        """A new database, a file-level copy of ``template`` when given (no client may be connected to it)."""
        self.drop(name)
        copy = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop(self, name: str) -> None:
        """Drop ``name``, ending its sessions (a server left running must not keep it)."""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        """Drop every database of the bench, also those a crashed run left."""
        with self.admin.connect() as connection:
            names = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE :prefix"),
                {"prefix": f"{DB_PREFIX}%"},
            ).scalars()
            for name in list(names):
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def opened(url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on ``url``, disposed on exit (a template must have no clients)."""
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


class WorkerProcess(ServerProcess):
    """``devicefactory worker``: ready when it logs that its threads run (it serves no HTTP)."""

    def _wait_ready(self, timeout: float = 60) -> None:
        """Poll the log for the workers' start line; fail with the log's tail if it does not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process is not None and self.process.poll() is None:
            if WORKERS_STARTED in self.log_file.read_text(errors="replace"):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not start: {self.log_file.read_text()[-2000:]}")


def worker(workdir: Path, url: str, *, pool_target: int = 0, key_workers: int = 1) -> WorkerProcess:
    """A ``devicefactory worker`` on ``url`` with its own log file."""
    env = {
        **os.environ,
        "DEVICEFACTORY_DATABASE_URL": url,
        "DEVICEFACTORY_MASTER_KEY_FILE": str(MASTER_KEY_FILE),
        "DEVICEFACTORY_KEY_POOL_TARGET": str(pool_target),
        "DEVICEFACTORY_KEY_WORKERS": str(key_workers),
        "DEVICEFACTORY_ACTION_BATCH_SIZE": str(ACTION_BATCH_SIZE),
    }
    log_file = Path(tempfile.mkdtemp(dir=workdir)) / "worker.log"
    return WorkerProcess(
        [sys.executable, "-m", "devicefactory", "worker"], env=env, log_file=log_file, port=0
    )


def web(workdir: Path, url: str) -> ServerProcess:
    """A ``serve --no-workers`` (one web process) on ``url``, in a directory of its own for its log."""
    return devicefactory_server(Path(tempfile.mkdtemp(dir=workdir)), MASTER_KEY_FILE, web_workers=1, url=url)


def start_all(stack: contextlib.ExitStack, processes: Sequence[ServerProcess]) -> None:
    """Start the processes at once (each start is mostly imports), each stopped when ``stack`` closes."""
    with ThreadPoolExecutor(len(processes)) as executor:
        list(executor.map(stack.enter_context, processes))


def cpu_seconds(processes: Sequence[ServerProcess]) -> float:
    """CPU time used so far by the processes together."""
    return sum(process.cpu_seconds() for process in processes)


def postgres_cpu() -> float:
    """CPU time used so far by every live PostgreSQL process on this host (Linux /proc).

    The server is not ours: its other databases' work counts too, so it is information.
    """
    ticks = 0
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or (entry / "comm").read_text().strip() != "postgres":
                continue
            # Fields after "(comm)": state is the 1st, utime the 12th, stime the 13th.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# --- 1. uploads ----------------------------------------------------------------------------


def build_templates(databases: Databases, pair: SealedKeyPair) -> tuple[str, str]:
    """The base database (schema, module maker) and the fleet database (base + reserved devices)."""
    base, fleet = DB_PREFIX, f"{DB_PREFIX}_fleet"
    factory = prepare_database(databases.create(base))
    try:
        oem_id = create_module_maker(factory, model=MODEL)
    finally:
        factory.kw["bind"].dispose()
    with opened(databases.create(fleet, template=base)) as factory:
        insert_fleet(factory, oem_id, pair)
        with factory.kw["bind"].connect() as connection:
            # What autovacuum would do in production; every copy inherits the statistics.
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    return base, fleet


def insert_fleet(factory: sessionmaker[Session], oem_id: str, pair: SealedKeyPair) -> None:
    """``UPLOAD_LINES`` reserved devices sharing one sealed pair (uploads never read keys)."""
    reserved_at = datetime(2026, 11, 22, tzinfo=UTC)
    for start in range(1, UPLOAD_LINES + 1, INSERT_CHUNK):
        rows = [
            {
                "dsn": dsn(n),
                "model": MODEL,
                "status": "reserved",
                "public_key": pair.public_pem,
                "sealed_private_key": pair.sealed_private,
                "reserved_by_oem_id": oem_id,
                "reserved_at": reserved_at,
                "datapoint_count": 0,
                "last_job_failed": False,
            }
            for n in range(start, min(start + INSERT_CHUNK, UPLOAD_LINES + 1))
        ]
        with session_scope(factory) as session:
            device_queries.insert_devices(session, rows)


def log_file(first: int, last: int) -> bytes:
    """A version-2 manufacture log of devices ``first`` to ``last``."""
    return "".join(log_line(n) for n in range(first, last + 1)).encode()


@dataclass(frozen=True)
class UploadSample:
    """One measurement: uploads sent at once to one web process, worked by ``workers`` workers."""

    workers: int
    uploads: int
    seconds: float  # first POST until every action shows success
    worked_seconds: float  # first started_at to last finished_at, from the database
    worker_cpu_seconds: float
    lines_per_s: float
    postgres_cpu_seconds: float  # every PostgreSQL process on this host, neighbours' work included
    load_1min: float  # at the end: how busy the shared machine was
    round: int
    setup_seconds: float  # copying the database, starting and stopping the processes (untimed)


def post_upload(client: httpx.Client, headers: dict[str, str], content: bytes) -> int:
    """POST one manufacture upload; its action's id."""
    response = client.post(
        ACTIONS_PATH,
        files={"file": ("factory.log", content, "text/plain")},
        data={"type": "manufacture", "validate_only": "false"},
        headers=headers,
    )
    if response.status_code != 202:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
    action_id: int = response.json()["factory_action"]["id"]
    return action_id


def wait_done(client: httpx.Client, headers: dict[str, str], action_ids: list[int]) -> None:
    """Poll each action until all have ended; every line must have been applied."""
    deadline = time.monotonic() + UPLOAD_TIMEOUT_SECONDS
    waiting = set(action_ids)
    while waiting:
        for action_id in sorted(waiting):
            action = client.get(f"{ACTIONS_PATH}/{action_id}", headers=headers).json()["factory_action"]
            if action["status"] == "success":
                waiting.discard(action_id)
            elif action["status"] == "failure":
                raise RuntimeError(f"upload {action_id} failed: {action['message']} {action['progress']}")
        if waiting and time.monotonic() > deadline:
            raise RuntimeError(f"uploads {sorted(waiting)} not done after {UPLOAD_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS if waiting else 0)


def worked_seconds(factory: sessionmaker[Session], action_ids: list[int]) -> float:
    """First ``started_at`` to last ``finished_at`` of the actions (the runners' own time)."""
    with factory() as session:
        row = session.execute(
            select(func.min(FactoryAction.started_at), func.max(FactoryAction.finished_at)).where(
                FactoryAction.id.in_(action_ids)
            )
        ).one()
    if row[0] is None or row[1] is None:
        raise RuntimeError(f"actions {action_ids} have no start or end")
    return float((row[1] - row[0]).total_seconds())


def upload_sample(
    databases: Databases, workdir: Path, fleet: str, workers: int, files: list[bytes], index: int
) -> UploadSample:
    """A fresh copy of the fleet, one web process and ``workers`` workers; the files POSTed at once."""
    name, begun = f"{DB_PREFIX}_upload", time.perf_counter()
    url = databases.create(name, template=fleet)
    try:
        with contextlib.ExitStack() as stack:
            runners = [worker(workdir, url) for _ in range(workers)]
            server = web(workdir, url)
            start_all(stack, [server, *runners])
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=120))
            headers = sign_in(client)
            cpu_before, pg_before, started = cpu_seconds(runners), postgres_cpu(), time.perf_counter()
            with ThreadPoolExecutor(len(files)) as executor:
                ids = list(executor.map(lambda content: post_upload(client, headers, content), files))
            wait_done(client, headers, ids)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds(runners) - cpu_before
            pg_cpu = postgres_cpu() - pg_before
        with opened(url) as factory:
            worked = worked_seconds(factory, ids)
    finally:
        databases.drop(name)
    overhead = time.perf_counter() - begun - elapsed
    load = os.getloadavg()[0]
    return UploadSample(
        workers, len(files), elapsed, worked, cpu, UPLOAD_LINES / elapsed, pg_cpu, load, index, overhead
    )


def measure_uploads(databases: Databases, workdir: Path, fleet: str) -> list[UploadSample]:
    """Rounds of one upload of every line and two of half each, each with 1 and 2 workers back to back.

    Back to back, so that a neighbour's burst of a minute or two hits both sides of a
    ratio; which goes first alternates, so that drift within a pair hits both.
    """
    half = UPLOAD_LINES // 2
    shapes = [[log_file(1, UPLOAD_LINES)], [log_file(1, half), log_file(half + 1, UPLOAD_LINES)]]
    samples: list[UploadSample] = []
    for index in range(UPLOAD_ROUNDS):
        for files in shapes:
            for workers in (1, 2) if index % 2 == 0 else (2, 1):
                samples.append(upload_sample(databases, workdir, fleet, workers, files, index))
                print(f"  uploads round {index + 1}: {describe_upload(samples[-1])}", flush=True)
    return samples


def describe_upload(sample: UploadSample) -> str:
    """One upload measurement as printed."""
    return (
        f"{sample.workers} worker(s), {sample.uploads} upload(s) at once: {sample.seconds:.2f} s = "
        f"{sample.lines_per_s:,.0f} lines/s (worked {sample.worked_seconds:.2f} s, "
        f"CPU/line: workers {sample.worker_cpu_seconds * 1e6 / UPLOAD_LINES:.0f} us, PostgreSQL "
        f"{sample.postgres_cpu_seconds * 1e6 / UPLOAD_LINES:.0f} us; load {sample.load_1min:.1f}; "
        f"untimed set-up {sample.setup_seconds:.1f} s)"
    )


def by_shape(samples: list[UploadSample], value: Callable[[UploadSample], float]) -> dict[str, float]:
    """The median of ``value`` for each (workers, uploads at once)."""
    return {
        f"{w}_workers_{u}_uploads": median([value(s) for s in samples if (s.workers, s.uploads) == (w, u)])
        for w in (1, 2)
        for u in (1, 2)
    }


def upload_figures(samples: list[UploadSample]) -> dict[str, Any]:
    """Median lines/s and worker CPU per line of each shape, and the 2-worker / 1-worker ratios."""
    rates = by_shape(samples, lambda s: s.lines_per_s)
    ratios = {"one_upload": paired_ratio(samples, 1), "two_uploads_at_once": paired_ratio(samples, 2)}
    return {
        "lines_per_s": rates,
        "ratio_2_to_1_workers": ratios,  # the median of each round's back-to-back ratio
        "worker_cpu_us_per_line": by_shape(samples, lambda s: s.worker_cpu_seconds * 1e6 / UPLOAD_LINES),
        "postgres_cpu_us_per_line": by_shape(samples, lambda s: s.postgres_cpu_seconds * 1e6 / UPLOAD_LINES),
    }


def paired_ratio(samples: list[UploadSample], uploads: int) -> float:
    """The median over rounds of 2-worker / 1-worker lines/s for ``uploads`` uploads at once."""

    def rate(index: int, workers: int) -> float:
        """Lines/s of that round's measurement with ``workers`` workers."""
        return next(
            s.lines_per_s for s in samples if (s.round, s.workers, s.uploads) == (index, workers, uploads)
        )

    return median([rate(index, 2) / rate(index, 1) for index in sorted({s.round for s in samples})])


# --- 2. reserve latency ---------------------------------------------------------------------


def reserve_phase(urls: list[str], headers: dict[str, str], count: int) -> tuple[list[float], float]:
    """RESERVE_CLIENTS threads, client i on ``urls[i % len(urls)]``: latencies (ms) and reserves/s.

    Every client is the same module maker (a factory's stations), so their reserves take
    the OEM's row lock one at a time (``get_oem_for_update``) whatever the web processes.
    """
    barrier = threading.Barrier(RESERVE_CLIENTS)
    per_client = RESERVE_PER_CLIENT[count]

    def client_loop(index: int) -> list[float]:
        """One client: an untimed reserve (connection, first-request costs), then the timed ones."""
        with httpx.Client(base_url=urls[index % len(urls)], timeout=60) as client:
            reserve(client, headers, count)
            barrier.wait()
            return [reserve(client, headers, count) for _ in range(per_client)]

    started = time.perf_counter()
    with ThreadPoolExecutor(RESERVE_CLIENTS) as executor:
        latencies = [ms for client in executor.map(client_loop, range(RESERVE_CLIENTS)) for ms in client]
    # Includes the untimed first reserves: information only.
    return latencies, RESERVE_CLIENTS * (per_client + 1) / (time.perf_counter() - started)


def reserve(client: httpx.Client, headers: dict[str, str], count: int) -> float:
    """Milliseconds of one reserve of ``count`` devices; it must answer 200."""
    started = time.perf_counter()
    response = client.post(RESERVE_PATH, json={"model": MODEL, "count": count}, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"reserve({count}) answered {response.status_code}: {response.text[:300]}")
    return elapsed


def reserve_keys() -> int:
    """Keys every reserve phase of every round takes, untimed first reserves included."""
    per_round = sum(RESERVE_CLIENTS * (runs + 1) * count for count, runs in RESERVE_PER_CLIENT.items())
    return 2 * RESERVE_ROUNDS * per_round + 10  # and the one reserve that picks the GET's device


def measure_reserve(servers: list[ServerProcess], headers: dict[str, str]) -> dict[str, Any]:
    """Alternating rounds through one web process and through two; samples pooled per configuration.

    Each reserve counts the OEM's reserved devices (about 10,000 more by the end), so the
    later rounds are slower: alternating the order gives both configurations that drift.
    """
    configurations = {"1_web_process": [servers[0].url], "2_web_processes": [s.url for s in servers]}
    samples: dict[str, dict[int, list[float]]] = {name: {1: [], 100: []} for name in configurations}
    rates: dict[str, dict[int, list[float]]] = {name: {1: [], 100: []} for name in configurations}
    for index in range(RESERVE_ROUNDS):
        for name in list(configurations)[:: 1 if index % 2 == 0 else -1]:
            for count in RESERVE_PER_CLIENT:
                latencies, rate = reserve_phase(configurations[name], headers, count)
                samples[name][count] += latencies
                rates[name][count].append(rate)
        print(f"  reserve round {index + 1} done", flush=True)
    return {"samples_ms": samples, "reserves_per_s": rates}


def reserve_figures(measured: dict[str, Any]) -> dict[str, Any]:
    """p50 and p95 of each configuration and count, and the 2-process / 1-process p50 ratio."""
    stats = {
        name: {
            str(count): {"p50": percentile(values, 50), "p95": percentile(values, 95)}
            for count, values in by_count.items()
        }
        for name, by_count in measured["samples_ms"].items()
    }
    ratios = {
        str(count): stats["2_web_processes"][str(count)]["p50"] / stats["1_web_process"][str(count)]["p50"]
        for count in RESERVE_PER_CLIENT
    }
    rates = {
        name: {str(c): median(v) for c, v in by.items()} for name, by in measured["reserves_per_s"].items()
    }
    return {"stats_ms": stats, "p50_ratio_2_to_1_processes": ratios, "reserves_per_s": rates}


# --- 4. requests/s -----------------------------------------------------------------------------


def wrk_get(url: str, seconds: int, authorization: str | None, script: Path) -> WrkResult:
    """One closed-loop wrk run of GETs of ``url`` from WRK_CONNECTIONS connections."""
    command = [
        ensure_wrk(),
        "-t1",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    if authorization:
        command += ["-H", f"Authorization: {authorization}"]
    done = subprocess.run([*command, url], capture_output=True, text=True)
    line = next((line for line in done.stdout.splitlines() if line.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stderr}{done.stdout}")
    raw = json.loads(line[len(MARKER) :])
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["socket_errors"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        threads_out_of_devices=0,
    )


@dataclass(frozen=True)
class GetSample:
    """Two wrk processes at once against the given web processes."""

    processes: int
    requests_per_s: float  # all processes together
    p50_ms: float  # the median of the two wrk runs' p50
    server_cpu_ms_per_request: float


def get_sample(
    servers: list[ServerProcess], path: str, seconds: int, authorization: str | None, script: Path
) -> GetSample:
    """Two wrk processes, the first on servers[0] and the second on servers[-1], at the same time."""
    targets = [servers[0], servers[-1]]
    cpu_before = cpu_seconds(servers)
    with ThreadPoolExecutor(2) as executor:
        runs = list(executor.map(lambda s: wrk_get(s.url + path, seconds, authorization, script), targets))
    if not all(run.clean for run in runs):
        raise RuntimeError(f"GET {path} had errors: {runs}")
    requests = sum(run.requests for run in runs)
    cpu_ms = (cpu_seconds(servers) - cpu_before) * 1000 / requests
    rate = sum(run.rate for run in runs)
    return GetSample(len(servers), rate, median([run.p50_ms for run in runs]), cpu_ms)


def measure_gets(
    servers: list[ServerProcess], device_path: str, authorization: str, workdir: Path
) -> dict[str, Any]:
    """Alternating rounds of the device GET on one web process and on two, and /healthz on one."""
    ensure_wrk()  # once, before the threads: two apt-get installs at once fight over dpkg's lock
    script = workdir / "scale.lua"
    script.write_text(WRK_DONE)
    samples: dict[str, list[GetSample]] = {
        "device_1_process": [],
        "device_2_processes": [],
        "healthz_1_process": [],
    }
    for index in range(GET_ROUNDS):
        for count in (1, 2) if index % 2 == 0 else (2, 1):
            sample = get_sample(servers[:count], device_path, GET_SECONDS, authorization, script)
            samples[f"device_{count}_process{'es' if count == 2 else ''}"].append(sample)
        samples["healthz_1_process"].append(
            get_sample(servers[:1], "/healthz", HEALTHZ_SECONDS, None, script)
        )
        print(
            f"  GET round {index + 1}: "
            + ", ".join(f"{k} {v[-1].requests_per_s:,.0f}/s" for k, v in samples.items())
        )
    return {name: [asdict(s) for s in values] for name, values in samples.items()}


def get_figures(samples: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median requests/s per web process, p50 and server CPU per request of each configuration."""
    return {
        name: {
            "requests_per_s_per_process": median([s["requests_per_s"] / s["processes"] for s in values]),
            "requests_per_s_total": median([s["requests_per_s"] for s in values]),
            "p50_ms": median([s["p50_ms"] for s in values]),
            "server_cpu_ms_per_request": median([s["server_cpu_ms_per_request"] for s in values]),
        }
        for name, values in samples.items()
    }


def measure_web(databases: Databases, workdir: Path, base: str, pair: SealedKeyPair) -> dict[str, Any]:
    """Figures 2 and 4 on one copy of the base database, through the same two web processes."""
    name = f"{DB_PREFIX}_web"
    url = databases.create(name, template=base)
    try:
        with opened(url) as factory:
            # Copies of one pair: reserve does the same work whichever pair it takes.
            stock_pool(factory, [pair] * reserve_keys())
        with contextlib.ExitStack() as stack:
            servers = [web(workdir, url), web(workdir, url)]
            start_all(stack, servers)
            with httpx.Client(base_url=servers[0].url, timeout=60) as client:
                headers = sign_in(client)  # one token for both: they share the database
                reserved = client.post(RESERVE_PATH, json={"model": MODEL, "count": 1}, headers=headers)
                reserved.raise_for_status()
            reserved_dsn = reserved.json()[0]["device"]["dsn"]
            reserve_measured = measure_reserve(servers, headers)
            gets = measure_gets(
                servers, f"/devicefactory/v1/devices/{reserved_dsn}", headers["Authorization"], workdir
            )
    finally:
        databases.drop(name)
    return {"reserve": reserve_measured, "gets": gets}


# --- 3. key pool fill ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySample:
    """Keys/s over a measured stretch, and the CPU time per key spent meanwhile."""

    keys_per_s: float
    cores: int
    cpu_ms_per_key: float
    settled_pool_size: int | None = None  # after the fill, when observed


def raw_key(_index: int) -> int:
    """One RSA-2048 key, nothing else (``cryptography`` releases the GIL while it generates)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).key_size


def raw_sample(count: int) -> KeySample:
    """``count`` keys in one thread per core, as the service's filler makes them."""
    cores = os.cpu_count() or 1
    cpu_before, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(cores) as executor:
        list(executor.map(raw_key, range(count)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    return KeySample(count / elapsed, cores, cpu * 1000 / count)


def pool_counts(factory: sessionmaker[Session], since: datetime) -> tuple[int, int]:
    """Keys in the pool, and fillers that have stored keys since ``since``."""
    with factory() as session:
        keys = session.scalar(select(func.count()).select_from(PoolKey)) or 0
        fillers = session.scalar(select(func.count()).where(FillerReport.updated_at >= since)) or 0
    return keys, fillers


def timed_fill(factory: sessionmaker[Session], workers: Sequence[ServerProcess]) -> tuple[float, int, float]:
    """Empty the pool of the idle fillers; keys/s, keys and worker CPU s from when both fill to the target.

    The stretch starts once every filler has stored keys: each notices the empty pool at
    its own next poll (up to 1 s apart), and until then fewer fillers than measured run.
    """
    emptied = datetime.now(UTC)
    with session_scope(factory) as session:
        session.execute(delete(PoolKey))
    deadline = time.monotonic() + POOL_TIMEOUT_SECONDS
    start: tuple[float, int, float] | None = None
    while time.monotonic() < deadline:
        keys, fillers = pool_counts(factory, emptied)
        now, cpu = time.perf_counter(), cpu_seconds(workers)
        if start is None and fillers == len(workers):
            start = (now, keys, cpu)
        elif start is not None and keys >= POOL_TARGET:
            return (keys - start[1]) / (now - start[0]), keys - start[1], cpu - start[2]
        time.sleep(0.1)
    raise RuntimeError(f"the pool did not reach {POOL_TARGET} keys in {POOL_TIMEOUT_SECONDS} s")


def settled_size(factory: sessionmaker[Session]) -> int:
    """The pool's size once it stops growing (each filler fills the deficit it saw)."""
    last, since = -1, time.monotonic()
    deadline = since + POOL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        keys, _ = pool_counts(factory, datetime.now(UTC))
        if keys != last:
            last, since = keys, time.monotonic()
        elif time.monotonic() - since >= SETTLE_SECONDS:
            return keys
        time.sleep(0.2)
    return last


def pool_sample(url: str, workdir: Path, pair: SealedKeyPair, *, settle: bool) -> KeySample:
    """Two idle workers on a full pool (copies of one pair); the pool emptied; its refill timed."""
    with opened(url) as factory, contextlib.ExitStack() as stack:
        with session_scope(factory) as session:
            session.execute(delete(PoolKey))
            session.execute(delete(FillerReport))
        stock_pool(factory, [pair] * POOL_TARGET)
        workers = [worker(workdir, url, pool_target=POOL_TARGET) for _ in range(POOL_WORKERS)]
        start_all(stack, workers)
        time.sleep(1.5)  # past start-up and a first poll of the full pool: both idle
        rate, keys, cpu = timed_fill(factory, workers)
        settled = settled_size(factory) if settle else None
    return KeySample(rate, POOL_WORKERS, cpu * 1000 / keys, settled)


def measure_keys(
    databases: Databases, workdir: Path, base: str, pair: SealedKeyPair
) -> dict[str, list[KeySample]]:
    """Alternating rounds of the pool fill and raw keygen, on one copy of the base database."""
    name = f"{DB_PREFIX}_keys"
    url = databases.create(name, template=base)
    pool: list[KeySample] = []
    raw: list[KeySample] = []
    try:
        for index in range(POOL_ROUNDS):
            if index % 2:  # raw first in odd rounds, so drift on a shared machine hits both
                raw.append(raw_sample(POOL_TARGET))
            # Once is enough to see where the pool ends.
            pool.append(pool_sample(url, workdir, pair, settle=index == 0))
            if not index % 2:
                raw.append(raw_sample(POOL_TARGET))
            print(
                f"  keys round {index + 1}: pool fill {describe_keys(pool[-1])}; raw {describe_keys(raw[-1])}"
            )
    finally:
        databases.drop(name)
    return {"pool_fill": pool, "raw": raw}


def describe_keys(sample: KeySample) -> str:
    """One keygen sample as printed."""
    return f"{sample.keys_per_s:.1f} keys/s on {sample.cores} cores ({sample.cpu_ms_per_key:.0f} ms CPU/key)"


def key_figures(samples: dict[str, list[KeySample]]) -> dict[str, Any]:
    """Median keys/s per core of each, CPU per key, the ratio, and the settled pool size."""
    per_core = {name: median([s.keys_per_s / s.cores for s in values]) for name, values in samples.items()}
    settled = [s.settled_pool_size for s in samples["pool_fill"] if s.settled_pool_size is not None]
    return {
        "keys_per_s_per_core": per_core,
        "cpu_ms_per_key": {name: median([s.cpu_ms_per_key for s in v]) for name, v in samples.items()},
        "ratio_pool_to_raw": per_core["pool_fill"] / per_core["raw"],
        "pool_target": POOL_TARGET,
        "settled_pool_size": settled[0] if settled else None,
        "samples": {name: [asdict(s) for s in values] for name, values in samples.items()},
    }


# --- the run -------------------------------------------------------------------------------------


def timed_step(name: str, step: Callable[[], Any], durations: dict[str, float]) -> Any:
    """Run ``step``, noting its wall time under ``name``."""
    print(f"  -- {name}", flush=True)
    started = time.perf_counter()
    result = step()
    durations[name] = round(time.perf_counter() - started, 1)
    return result


def measure() -> dict[str, Any]:
    """Every figure on databases of its own, dropped at the end whatever happens."""
    databases, durations = Databases(), dict[str, float]()
    pair = cached_pairs(1)[0]
    databases.drop_all()
    try:
        with tempfile.TemporaryDirectory(prefix="devicefactory-bench-scale-") as tmp:
            workdir = Path(tmp)
            base, fleet = timed_step("templates", lambda: build_templates(databases, pair), durations)
            uploads = timed_step("uploads", lambda: measure_uploads(databases, workdir, fleet), durations)
            webs = timed_step("web", lambda: measure_web(databases, workdir, base, pair), durations)
            keys = timed_step("keys", lambda: measure_keys(databases, workdir, base, pair), durations)
    finally:
        databases.drop_all()
        databases.admin.dispose()
    return {"uploads": uploads, "web": webs, "keys": keys, "step_seconds": durations}


def summary_lines(figures: dict[str, Any], checks: list[Check]) -> list[str]:
    """One line per figure, as printed."""
    rates, ratios = figures["uploads"]["lines_per_s"], figures["uploads"]["ratio_2_to_1_workers"]
    p50 = {
        name: {count: stats["p50"] for count, stats in by_count.items()}
        for name, by_count in figures["reserve"]["stats_ms"].items()
    }
    rate = figures["reserve"]["reserves_per_s"]
    per_core, gets = figures["keys"]["keys_per_s_per_core"], figures["gets"]
    cpu = figures["keys"]["cpu_ms_per_key"]
    fleet, pool = checks
    return [
        f"scale uploads: one {UPLOAD_LINES:,}-line upload {rates['1_workers_1_uploads']:,.0f} lines/s "
        f"with 1 worker, {rates['2_workers_1_uploads']:,.0f} with 2 (ratio {ratios['one_upload']:.2f}); "
        f"two {UPLOAD_LINES // 2:,}-line uploads at once {rates['1_workers_2_uploads']:,.0f} lines/s "
        f"with 1 worker, {rates['2_workers_2_uploads']:,.0f} with 2: ratio {fleet.value:.2f} "
        f"(target {fleet.target_text()}) {fleet.verdict()}",
        f"scale reserve ({RESERVE_CLIENTS} clients, one OEM): p50 through 2 web processes reserve(1) "
        f"{p50['2_web_processes']['1']:.1f} ms, reserve(100) {p50['2_web_processes']['100']:.1f} ms; "
        f"through 1: {p50['1_web_process']['1']:.1f} ms, {p50['1_web_process']['100']:.1f} ms "
        f"(2/1 ratios {p50['2_web_processes']['1'] / p50['1_web_process']['1']:.2f}, "
        f"{p50['2_web_processes']['100'] / p50['1_web_process']['100']:.2f}); reserves/s "
        f"{rate['2_web_processes']['1']:.0f} and {rate['2_web_processes']['100']:.0f} through 2, "
        f"{rate['1_web_process']['1']:.0f} and {rate['1_web_process']['100']:.0f} through 1",
        f"scale keys: pool fill by {POOL_WORKERS} workers {per_core['pool_fill']:.1f} keys/s per core; "
        f"raw keygen {per_core['raw']:.1f} keys/s per core: ratio {pool.value:.2f} "
        f"(target {pool.target_text()}) {pool.verdict()}; CPU per key {cpu['pool_fill']:.0f} ms vs "
        f"{cpu['raw']:.0f} ms raw; the pool settled at "
        f"{figures['keys']['settled_pool_size']} keys for a target of {POOL_TARGET}",
        f"scale GET /devices/{{dsn}}: {gets['device_1_process']['requests_per_s_per_process']:,.0f} req/s "
        f"on 1 web process, {gets['device_2_processes']['requests_per_s_per_process']:,.0f} per process "
        f"on 2 ({gets['device_2_processes']['requests_per_s_total']:,.0f} together); GET /healthz "
        f"{gets['healthz_1_process']['requests_per_s_per_process']:,.0f} req/s on 1",
    ]


def row(
    figure: str, value: float, reference: str, of: float, unit: str = "", ratio: float | None = None
) -> tuple[str, str, str, str]:
    """One table row: a figure, its same-run reference and their ratio (of the two unless given)."""
    digits = 1 if value < 100 else 0
    return (
        figure,
        f"{value:,.{digits}f}{unit}",
        f"{reference} {of:,.{digits}f}{unit}",
        f"{value / of if ratio is None else ratio:.2f}",
    )


def quotable_table(figures: dict[str, Any]) -> str:
    """The figures docs/performance.md can quote, each with its same-run reference."""
    lines, keys = figures["uploads"]["lines_per_s"], figures["keys"]["keys_per_s_per_core"]
    gets = {name: values["requests_per_s_per_process"] for name, values in figures["gets"].items()}
    p50 = figures["reserve"]["stats_ms"]
    one_worker, paired = lines["1_workers_2_uploads"], figures["uploads"]["ratio_2_to_1_workers"]
    rows = [
        row("keys/s per core, pool fill (2 workers)", keys["pool_fill"], "raw keygen", keys["raw"]),
        row(
            "lines/s, one upload, 2 workers",
            lines["2_workers_1_uploads"],
            "1 worker",
            lines["1_workers_1_uploads"],
            ratio=paired["one_upload"],
        ),
        row(
            "lines/s, two uploads at once, 2 workers",
            lines["2_workers_2_uploads"],
            "1 worker",
            one_worker,
            ratio=paired["two_uploads_at_once"],
        ),
        row(
            "lines/s per worker, two uploads, 2 workers",
            lines["2_workers_2_uploads"] / 2,
            "1 worker",
            one_worker,
            ratio=paired["two_uploads_at_once"] / 2,
        ),
        row(
            "GET device req/s, 1 web process", gets["device_1_process"], "healthz", gets["healthz_1_process"]
        ),
        row(
            "GET device req/s per process, 2 processes",
            gets["device_2_processes"],
            "1 process",
            gets["device_1_process"],
        ),
    ]
    rows += [
        row(
            f"reserve({count}) p50, 2 web processes",
            p50["2_web_processes"][count]["p50"],
            "1 process",
            p50["1_web_process"][count]["p50"],
            " ms",
        )
        for count in ("1", "100")
    ]
    return table([("figure", "value", "reference (same run)", "ratio"), *rows])


def table(rows: list[tuple[str, str, str, str]]) -> str:
    """Fixed-width columns with a rule under the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def run() -> dict[str, Any]:
    """Measure, print one line per figure and the table, and return the figures."""
    measured = measure()
    figures = {
        "uploads": upload_figures(measured["uploads"]),
        "reserve": reserve_figures(measured["web"]["reserve"]),
        "gets": get_figures(measured["web"]["gets"]),
        "keys": key_figures(measured["keys"]),
    }
    checks = [
        Check(
            "2 workers / 1 worker, 2 uploads at once",
            figures["uploads"]["ratio_2_to_1_workers"]["two_uploads_at_once"],
            TARGET_FLEET_RATIO,
        ),
        Check(
            "pool fill (2 workers) / raw keygen, per core",
            figures["keys"]["ratio_pool_to_raw"],
            TARGET_POOL_RATIO,
        ),
    ]
    print("\n".join(summary_lines(figures, checks)))
    print(quotable_table(figures))
    print(f"steps (s): {measured['step_seconds']}")
    return {
        **figures,
        "upload_samples": [asdict(s) for s in measured["uploads"]],
        "reserve_samples_ms": measured["web"]["reserve"]["samples_ms"],
        "get_samples": measured["web"]["gets"],
        "step_seconds": measured["step_seconds"],
        "settings": {
            "upload_lines": UPLOAD_LINES,
            "action_batch_size": ACTION_BATCH_SIZE,
            "reserve_clients": RESERVE_CLIENTS,
            "wrk_connections": 2 * WRK_CONNECTIONS,
            "pool_target": POOL_TARGET,
            "key_workers_per_process": 1,
        },
        "checks": [check.as_dict() for check in checks],
    }


if __name__ == "__main__":
    begun = datetime.now(UTC)
    print(f"results: {write_alone_run('scale', run(), begun)}")
