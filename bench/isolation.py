"""Tenant isolation ("noisy neighbour"): OEM A's latency during a storm against A's latency alone.

Run alone: ``python -m bench.isolation``. One ``devicefactory serve`` with its
background workers on a fresh SQLite database holds two module makers: A (the
bench's usual module maker, with a factory certificate and a stocked key pool) and
B, its neighbour. B uploads a junk manufacture log whose every line is refused (DSNs
that do not exist), so that each of its action files is as large as the upload.

- download storm: A's mix of reserve, manufacture and search, alone, then while 16
  threads of B download the action's failed, log and csv files over and over;
- sign-in storm: A's write latency alone, then while 6 threads sign in with unknown
  emails and wrong passwords as fast as they can.

Throughout, ``GET /healthz`` is polled every 0.5 s and the resident memory of the
server's process tree sampled every 0.5 s. Each storm runs in a child process so
that its client work does not share a GIL with A's timing threads. Every target is
a ratio or a count from the same run.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import multiprocessing
import os
import random
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bench.keycache import MASTER_KEY_FILE, cached_pairs, stock_pool
from bench.report import Check, median, percentile, write_alone_run
from bench.server import ServerProcess, database_url, devicefactory_server
from bench.upload import wait_for_workers
from bench.world import MODEL, RESERVE_PATH, create_module_maker, prepare_database, sign_in
from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Role
from devicefactory.db import session_scope

# serve's default. With 2 the idle tree (supervisor, 2 web workers, worker, resource
# tracker) already holds ~390 MB, over the memory target before any storm.
WEB_WORKERS = 1
POOL_KEYS = 30_000  # copies of one cached pair: more than A reserves in every phase together
JUNK_LINES = 200_000
UPLOAD_TIMEOUT_SECONDS = 180
A_THREADS = 3
A_PAUSE_SECONDS = 0.01  # between two calls of one A thread: a busy factory, not a load generator
A_TIMEOUT_SECONDS = 10  # an A call slower than this is an error (and timed at this)
ALONE_SECONDS = 15
STORM_SECONDS = 30
DOWNLOAD_THREADS = 16
FILE_KINDS = ("failed", "log", "csv")
SIGN_IN_ALONE_SECONDS = 10
SIGN_IN_STORM_SECONDS = 15
SIGN_IN_THREADS = 6
MONITOR_EVERY_SECONDS = 0.5
# A downloader honours Retry-After but comes back within this: B stays a noisy neighbour.
MAX_RETRY_PAUSE_SECONDS = 1.0
TARGET_P95_RATIO = 3.0
TARGET_WRITE_P50_RATIO = 3.0
TARGET_RSS_MB = 300.0
NEIGHBOUR_EMAIL = "factory@neighbour.bench.example"
NEIGHBOUR_PASSWORD = "neighbour-password-2026"
ACTIONS_PATH = "/devicefactory/v1/factory_actions"
DEVICES_PATH = "/devicefactory/v1/devices"
SIGN_IN_PATH = "/users/sign_in.json"
DOM_AT = "2016/11/24 10:34:23 UTC"
WRITES = ("reserve", "manufacture")


# --- the world ---------------------------------------------------------------------------


def create_neighbour(factory: sessionmaker[Session]) -> None:
    """OEM B: a module maker with its ModuleManufacturer user (no certificate: it never reserves)."""
    with session_scope(factory) as session:
        oem = accounts.create_oem(session, name="Bench Neighbour", module_manufacturer=True)
        accounts.create_user(
            session,
            None,
            email=NEIGHBOUR_EMAIL,
            password=NEIGHBOUR_PASSWORD,
            role=Role.MODULE_MANUFACTURER,
            oem_id=oem.oem_id,
        )


def build_world(workdir: Path) -> None:
    """Schema, A with its certificate and model, B, and a key pool deep enough for every phase."""
    factory = prepare_database(database_url(workdir))
    create_module_maker(factory)
    create_neighbour(factory)
    # Reserve does not depend on which pair it takes, so one cached pair stocks the whole pool.
    stock_pool(factory, cached_pairs(1) * POOL_KEYS)
    factory.kw["bind"].dispose()


def junk_log() -> bytes:
    """Well-formed version-2 lines, each naming a DSN nobody reserved: every line is refused."""
    lines = (
        f"2,1318462302,{DOM_AT},label,0,{MODEL},AC000W{900_000_000 + n:09d},{n:012x},WD101a,p{n},junk-{n},\n"
        for n in range(JUNK_LINES)
    )
    return "".join(lines).encode()


def sign_in_as(client: httpx.Client, email: str, password: str) -> str:
    """The Authorization header value of a user."""
    response = client.post(SIGN_IN_PATH, json={"user": {"email": email, "password": password}})
    response.raise_for_status()
    return f"auth_token {response.json()['access_token']}"


def upload_junk(client: httpx.Client, authorization: str) -> tuple[int, dict[str, Any], float]:
    """B's junk upload, polled until finished: its id, its final JSON, seconds from POST to finished."""
    headers = {"Authorization": authorization}
    started = time.perf_counter()
    response = client.post(
        ACTIONS_PATH,
        files={"file": ("junk.log", junk_log(), "text/plain")},
        data={"type": "manufacture"},
        headers=headers,
    )
    if response.status_code != 202:
        raise RuntimeError(f"junk upload answered {response.status_code}: {response.text[:500]}")
    action_id: int = response.json()["factory_action"]["id"]
    deadline = time.monotonic() + UPLOAD_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        action: dict[str, Any] = client.get(f"{ACTIONS_PATH}/{action_id}", headers=headers).json()
        if action["factory_action"]["status"] in ("success", "failure"):
            return action_id, action["factory_action"], time.perf_counter() - started
        time.sleep(0.5)
    raise RuntimeError(f"the junk upload did not finish in {UPLOAD_TIMEOUT_SECONDS} s")


def file_sizes(client: httpx.Client, authorization: str, action_id: int) -> dict[str, int]:
    """Bytes of each action file, read once before the storm (this also checks they download)."""
    sizes = {}
    for kind in FILE_KINDS:
        response = client.get(
            f"{ACTIONS_PATH}/{action_id}/files/{kind}", headers={"Authorization": authorization}
        )
        if response.status_code != 200:
            raise RuntimeError(f"files/{kind} answered {response.status_code}: {response.text[:300]}")
        sizes[kind] = len(response.content)
    return sizes


# --- the server's memory -----------------------------------------------------------------


def tree_rss_mb(root: int) -> float:
    """VmRSS of ``root`` and all its descendants, MB (Linux /proc); shared pages count in each."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Fields after "(comm)": state, ppid, ...
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
    total_kib, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total_kib += _rss_kib(pid)
        todo += children.get(pid, [])
    return total_kib / 1024


def _rss_kib(pid: int) -> int:
    """VmRSS of one process, 0 when it has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# --- OEM A -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One of A's calls: what, how long until its body was read, its status (0: no answer)."""

    op: str
    ms: float
    status: int

    @property
    def ok(self) -> bool:
        """A 2xx answer."""
        return 200 <= self.status < 300


@dataclass
class TenantA:
    """A's shared state: its signed-in header and the DSNs it reserved but has not manufactured."""

    url: str
    authorization: str
    unmade: deque[str] = field(default_factory=deque)
    macs: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def call(self, client: httpx.Client, rng: random.Random) -> Call:
        """One call of A's mix: reserve, manufacture (of a DSN it reserved) or search."""
        choice = rng.random()
        if choice < 0.4 and self.unmade:
            return self._manufacture(client)
        if choice < 0.7:
            return self._reserve(client, rng.randint(1, 10))
        return _timed(client, "search", "GET", DEVICES_PATH, params={"dsn": "AC000W*", "limit": "50"})

    def _reserve(self, client: httpx.Client, count: int) -> Call:
        """Reserve ``count`` devices and keep their DSNs for later manufactures."""
        call, response = _timed_response(
            client, "reserve", "POST", RESERVE_PATH, json={"model": MODEL, "count": count}
        )
        if call.ok and response is not None:
            self.unmade.extend(item["device"]["dsn"] for item in response.json())
        return call

    def _manufacture(self, client: httpx.Client) -> Call:
        """Manufacture one reserved device with a fresh mac and hwsig."""
        try:
            dsn = self.unmade.popleft()
        except IndexError:  # another thread took the last one
            return self._reserve(client, 1)
        n = next(self.macs)
        body = {"model": MODEL, "mac": f"{n:012x}", "hwsig": f"isolation-{n}", "dom_at": DOM_AT}
        return _timed(client, "manufacture", "POST", f"{DEVICES_PATH}/{dsn}/manufacture", json=body)

    def loop(self, deadline: float, calls: list[Call], seed: int) -> None:
        """Call until ``deadline`` (monotonic), appending each call to ``calls``."""
        rng = random.Random(seed)
        headers = {"Authorization": self.authorization}
        with httpx.Client(base_url=self.url, headers=headers, timeout=A_TIMEOUT_SECONDS) as client:
            while time.monotonic() < deadline:
                calls.append(self.call(client, rng))
                time.sleep(A_PAUSE_SECONDS)


def _timed_response(
    client: httpx.Client, op: str, method: str, path: str, **kwargs: Any
) -> tuple[Call, httpx.Response | None]:
    """One request, timed until its body is read; a transport error or timeout is status 0."""
    started = time.perf_counter()
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError:
        return Call(op, (time.perf_counter() - started) * 1000, 0), None
    return Call(op, (time.perf_counter() - started) * 1000, response.status_code), response


def _timed(client: httpx.Client, op: str, method: str, path: str, **kwargs: Any) -> Call:
    """As ``_timed_response``, the call only."""
    return _timed_response(client, op, method, path, **kwargs)[0]


# --- the storms (each runs in a child process) -----------------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def proper_429(response: httpx.Response, body: bytes) -> bool:
    """A 429 as the API promises it: a Retry-After header and an AFS-429 error body."""
    if retry_after_seconds(response.headers.get("Retry-After")) is None:
        return False
    try:
        errors = json.loads(body)["error"]
        return any(error.get("code") == "AFS-429" for error in errors)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def download_once(client: httpx.Client, path: str, deadline: float) -> tuple[Counter[str], float]:
    """Stream one file to its end: what happened (with summed ms per answer kind), and the pause after."""
    started = time.perf_counter()
    try:
        with client.stream("GET", path) as response:
            if response.status_code == 429:
                proper = proper_429(response, response.read())
                retry = retry_after_seconds(response.headers.get("Retry-After")) or 0.0
                ms = int((time.perf_counter() - started) * 1000)
                outcome = Counter({"429": 1, "429_ms": ms, "429_improper": 0 if proper else 1})
                return outcome, min(retry, MAX_RETRY_PAUSE_SECONDS)
            size = 0
            for chunk in response.iter_raw(1 << 20):
                size += len(chunk)
                if time.monotonic() > deadline:
                    # The storm is over: the download counts for its bytes, not as an answer.
                    return Counter({"cut_at_end": 1, "bytes": size}), 0.0
            kind = "200" if response.status_code == 200 else "other"
            ms = int((time.perf_counter() - started) * 1000)
            return Counter({kind: 1, f"{kind}_ms": ms, "bytes": size}), 0.0
    except httpx.HTTPError:
        return Counter({"transport_errors": 1}), 0.0


def download_storm(url: str, authorization: str, action_id: int, seconds: float) -> dict[str, int]:
    """``DOWNLOAD_THREADS`` threads downloading the action's files in turn for ``seconds``."""
    deadline = time.monotonic() + seconds
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def downloader(index: int) -> None:
        """One thread: the next file kind after each download, starting at its own."""
        headers = {"Authorization": authorization}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for n in itertools.count(index):
                if time.monotonic() >= deadline:
                    return
                path = f"{ACTIONS_PATH}/{action_id}/files/{FILE_KINDS[n % len(FILE_KINDS)]}"
                outcome, pause = download_once(client, path, deadline)
                with lock:
                    counts.update(outcome)
                time.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    _run_threads(downloader, DOWNLOAD_THREADS)
    return dict(counts)


def sign_in_storm(url: str, seconds: float) -> dict[str, int]:
    """``SIGN_IN_THREADS`` threads signing in with unknown emails and wrong passwords, no pause."""
    deadline = time.monotonic() + seconds
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def guesser(_: int) -> None:
        """One thread of guesses."""
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < deadline:
                user = {"email": f"nobody-{uuid.uuid4().hex}@storm.example", "password": uuid.uuid4().hex}
                outcome = sign_in_once(client, user)
                with lock:
                    counts.update(outcome)

    _run_threads(guesser, SIGN_IN_THREADS)
    return dict(counts)


def sign_in_once(client: httpx.Client, user: dict[str, str]) -> Counter[str]:
    """One wrong sign-in, counted by its answer (with summed ms per answer kind)."""
    started = time.perf_counter()
    try:
        response = client.post(SIGN_IN_PATH, json={"user": user})
    except httpx.HTTPError:
        return Counter({"transport_errors": 1})
    kind = str(response.status_code) if response.status_code in (401, 429) else "other"
    outcome = Counter({kind: 1, f"{kind}_ms": int((time.perf_counter() - started) * 1000)})
    if response.status_code == 429:
        outcome["429_improper"] = 0 if proper_429(response, response.content) else 1
    return outcome


def _run_threads(target: Callable[[int], None], count: int) -> None:
    """Start ``count`` threads of ``target(index)`` and wait for all."""
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- one phase -------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase measured."""

    seconds: float
    calls: list[Call] = field(default_factory=list)
    healthz: list[Call] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    storm: dict[str, int] = field(default_factory=dict)

    def latencies(self, ops: tuple[str, ...] | None = None) -> list[float]:
        """A's latencies (ms), of ``ops`` only when given."""
        return [c.ms for c in self.calls if ops is None or c.op in ops]

    def p(self, q: float, ops: tuple[str, ...] | None = None) -> float:
        """The q-th percentile of A's latencies (ms), of ``ops`` only when given."""
        return percentile(self.latencies(ops), q)

    @property
    def errors(self) -> int:
        """A's calls that did not answer 2xx."""
        return sum(not c.ok for c in self.calls)

    @property
    def healthz_failures(self) -> int:
        """Health polls that did not answer 200."""
        return sum(c.status != 200 for c in self.healthz)

    def summary(self) -> dict[str, Any]:
        """The phase for the JSON results."""
        by_op = {op: self.latencies((op,)) for op in ("reserve", "manufacture", "search")}
        return {
            "seconds": self.seconds,
            "a_calls": len(self.calls),
            "a_errors": self.errors,
            "a_statuses": dict(Counter(str(c.status) for c in self.calls)),
            "a_p50_ms": self.p(50),
            "a_p95_ms": self.p(95),
            "a_write_p50_ms": self.p(50, WRITES),
            "a_by_op_ms": {
                op: {"calls": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95)}
                for op, v in by_op.items()
            },
            "healthz_polls": len(self.healthz),
            "healthz_failures": self.healthz_failures,
            "healthz_p50_ms": percentile([c.ms for c in self.healthz], 50),
            "healthz_max_ms": max((c.ms for c in self.healthz), default=float("nan")),
            "rss_mb_median": median(self.rss_mb),
            "rss_mb_peak": max(self.rss_mb, default=float("nan")),
            "storm": self.storm,
            "storm_mean_ms": mean_ms(self.storm),
        }


def mean_ms(counts: dict[str, int]) -> dict[str, float]:
    """Mean time of each answer kind of a storm, from its summed ``<kind>_ms``."""
    return {kind[:-3]: total / counts[kind[:-3]] for kind, total in counts.items() if kind.endswith("_ms")}


def poll_health(url: str, stop: threading.Event, polls: list[Call]) -> None:
    """GET /healthz every ``MONITOR_EVERY_SECONDS`` until ``stop``."""
    with httpx.Client(base_url=url, timeout=A_TIMEOUT_SECONDS) as client:
        while not stop.is_set():
            polls.append(_timed(client, "healthz", "GET", "/healthz"))
            stop.wait(MONITOR_EVERY_SECONDS)


def sample_rss(root: int, stop: threading.Event, samples: list[float]) -> None:
    """The server tree's RSS every ``MONITOR_EVERY_SECONDS`` until ``stop``."""
    while not stop.is_set():
        samples.append(tree_rss_mb(root))
        stop.wait(MONITOR_EVERY_SECONDS)


def run_phase(
    server: ServerProcess,
    a: TenantA,
    seconds: float,
    storm: Callable[[], concurrent.futures.Future[dict[str, int]]] | None,
) -> Phase:
    """A's threads, the health poller and the RSS sampler for ``seconds``, ``storm`` alongside."""
    assert server.process is not None
    phase, stop = Phase(seconds), threading.Event()
    monitors = [
        threading.Thread(target=poll_health, args=(server.url, stop, phase.healthz)),
        threading.Thread(target=sample_rss, args=(server.process.pid, stop, phase.rss_mb)),
    ]
    future = storm() if storm is not None else None
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=a.loop, args=(deadline, phase.calls, seed)) for seed in range(A_THREADS)
    ]
    for thread in monitors + threads:
        thread.start()
    for thread in threads:
        thread.join()
    if future is not None:
        phase.storm = future.result()
    stop.set()
    for thread in monitors:
        thread.join()
    return phase


def describe(name: str, phase: Phase) -> str:
    """One phase as printed while the benchmark runs."""
    return (
        f"  {name}: {len(phase.calls)} A calls, p50 {phase.p(50):.1f} ms, p95 {phase.p(95):.1f} ms, "
        f"write p50 {phase.p(50, WRITES):.1f} ms, "
        f"{phase.errors} errors; healthz {len(phase.healthz)} polls, {phase.healthz_failures} not 200; "
        f"RSS peak {max(phase.rss_mb, default=float('nan')):.0f} MB"
        + (f"; storm {dict(sorted(phase.storm.items()))}" if phase.storm else "")
        + "".join(f", {kind} {ms:.0f} ms mean" for kind, ms in mean_ms(phase.storm).items())
    )


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """Every phase and what the setup saw."""

    idle_rss_mb: float
    upload: dict[str, Any]
    file_bytes: dict[str, int]
    phases: dict[str, Phase]
    server_log_problems: list[str]


def measure() -> Measured:
    """Build the world, upload B's junk, then the four phases on one server."""
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding threads and sockets
    with (
        tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp,
        concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as storms,
    ):
        storms.submit(os.getpid).result()  # the child is up before any phase is timed
        workdir = Path(tmp)
        started = time.perf_counter()
        build_world(workdir)
        print(
            f"  two OEMs and {POOL_KEYS:,} pool keys in {time.perf_counter() - started:.1f} s (untimed)",
            flush=True,
        )
        with devicefactory_server(
            workdir, MASTER_KEY_FILE, web_workers=WEB_WORKERS, background_workers=True
        ) as server:
            wait_for_workers(server, workdir / "server.log")
            assert server.process is not None
            idle = tree_rss_mb(server.process.pid)
            print(f"  server tree idle: {idle:.0f} MB RSS", flush=True)
            measured = dataclasses.replace(measure_on(server, storms), idle_rss_mb=idle)
        return dataclasses.replace(measured, server_log_problems=log_problems(workdir / "server.log"))


def measure_on(server: ServerProcess, storms: concurrent.futures.Executor) -> Measured:
    """The junk upload, then alone and storm phases of both scenarios."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        a = TenantA(server.url, sign_in(client)["Authorization"])
        b = sign_in_as(client, NEIGHBOUR_EMAIL, NEIGHBOUR_PASSWORD)
        action_id, action, upload_seconds = upload_junk(client, b)
        done = f"{action['status']} in {upload_seconds:.1f} s"
        print(f"  junk upload: {JUNK_LINES:,} lines {done}, {action['progress']}", flush=True)
        sizes = file_sizes(client, b, action_id)
        print(
            f"  action files: {', '.join(f'{k} {v / 2**20:.1f} MiB' for k, v in sizes.items())}", flush=True
        )
    run_phase(server, a, 2, None)  # warm-up: first-request costs are not the path
    phases: dict[str, Phase] = {}
    phases["downloads_alone"] = run_phase(server, a, ALONE_SECONDS, None)
    print(describe("downloads, A alone", phases["downloads_alone"]), flush=True)
    phases["downloads_storm"] = run_phase(
        server,
        a,
        STORM_SECONDS,
        lambda: storms.submit(download_storm, server.url, b, action_id, STORM_SECONDS),
    )
    print(describe("downloads, storm", phases["downloads_storm"]), flush=True)
    phases["sign_in_alone"] = run_phase(server, a, SIGN_IN_ALONE_SECONDS, None)
    print(describe("sign-ins, A alone", phases["sign_in_alone"]), flush=True)
    phases["sign_in_storm"] = run_phase(
        server,
        a,
        SIGN_IN_STORM_SECONDS,
        lambda: storms.submit(sign_in_storm, server.url, SIGN_IN_STORM_SECONDS),
    )
    print(describe("sign-ins, storm", phases["sign_in_storm"]), flush=True)
    upload = {
        "action_id": action_id,
        "seconds": upload_seconds,
        "status": action["status"],
        "progress": action["progress"],
    }
    return Measured(float("nan"), upload, sizes, phases, [])


def log_problems(log_file: Path) -> list[str]:
    """The server log's error and traceback lines (at most 20), to report what misbehaved."""
    lines = log_file.read_text(errors="replace").splitlines()
    return [line for line in lines if "ERROR" in line or "Traceback" in line or "CRITICAL" in line][:20]


def checks_of(phases: dict[str, Phase]) -> list[Check]:
    """The targets: latency ratios within the run, error counts, memory."""
    alone, storm = phases["downloads_alone"], phases["downloads_storm"]
    p95_ratio = storm.p(95) / alone.p(95)
    write_ratio = phases["sign_in_storm"].p(50, WRITES) / phases["sign_in_alone"].p(50, WRITES)
    return [
        Check("download storm: A p95 / alone", p95_ratio, TARGET_P95_RATIO, higher_is_better=False),
        Check("download storm: A errors", storm.errors, 0, higher_is_better=False),
        Check("download storm: healthz not 200", storm.healthz_failures, 0, higher_is_better=False),
        Check(
            "download storm: peak server RSS", max(storm.rss_mb), TARGET_RSS_MB, "MB", higher_is_better=False
        ),
        Check("download storm: improper 429s", storm.storm.get("429_improper", 0), 0, higher_is_better=False),
        Check(
            "sign-in storm: A write p50 / alone", write_ratio, TARGET_WRITE_P50_RATIO, higher_is_better=False
        ),
    ]


def download_line(phases: dict[str, Phase], checks: list[Check]) -> str:
    """Scenario 1 as printed: A's p95 ratio, errors, healthz, memory, B's answers."""
    alone, storm = phases["downloads_alone"], phases["downloads_storm"]
    ratio, errors, health, rss, improper = checks[:5]
    counts = storm.storm
    return (
        f"isolation, download storm: A p95 {storm.p(95):.1f} ms vs {alone.p(95):.1f} ms alone, "
        f"ratio {ratio.value:.2f} (target {ratio.target_text()}) {ratio.verdict()}; "
        f"A errors {errors.value:.0f} {errors.verdict()}; "
        f"healthz not 200 {health.value:.0f} {health.verdict()}; "
        f"peak RSS {rss.value:.0f} MB (target {rss.target_text()}) {rss.verdict()}; "
        f"B downloads: {counts.get('200', 0)} x 200, {counts.get('429', 0)} x 429 "
        f"({improper.value:.0f} improper {improper.verdict()}), "
        f"{counts.get('other', 0) + counts.get('transport_errors', 0)} other"
    )


def sign_in_line(phases: dict[str, Phase], ratio: Check) -> str:
    """Scenario 2 as printed: A's write p50 ratio, its errors, the storm's answers."""
    alone, storm = phases["sign_in_alone"], phases["sign_in_storm"]
    counts = storm.storm
    return (
        f"isolation, sign-in storm: A write p50 {storm.p(50, WRITES):.1f} ms vs {alone.p(50, WRITES):.1f} ms "
        f"alone, ratio {ratio.value:.2f} (target {ratio.target_text()}) {ratio.verdict()}; "
        f"A errors {storm.errors}; sign-ins: {counts.get('401', 0)} x 401, {counts.get('429', 0)} x 429 "
        f"({counts.get('429_improper', 0)} improper), "
        f"{counts.get('other', 0) + counts.get('transport_errors', 0)} other"
    )


def run() -> dict[str, Any]:
    """Measure, print one line per scenario and return the figures."""
    measured = measure()
    phases = measured.phases
    checks = checks_of(phases)
    print(download_line(phases, checks))
    print(sign_in_line(phases, checks[-1]))
    for line in measured.server_log_problems:
        print(f"  server log: {line}")
    return {
        "web_workers": WEB_WORKERS,
        "a_threads": A_THREADS,
        "download_threads": DOWNLOAD_THREADS,
        "sign_in_threads": SIGN_IN_THREADS,
        "idle_server_rss_mb": measured.idle_rss_mb,
        "junk_upload": measured.upload,
        "action_file_bytes": measured.file_bytes,
        "phases": {name: phase.summary() for name, phase in phases.items()},
        "server_log_problems": measured.server_log_problems,
        "checks": [check.as_dict() for check in checks],
    }


if __name__ == "__main__":
    begun = datetime.now(UTC)
    print(f"results: {write_alone_run('isolation', run(), begun)}")
