"""A 100,000-line manufacture upload end to end, against the parse rate and raw SQLite UPDATEs.

Run alone: ``python -m bench.upload``. One SQLite database with 100,000 reserved
devices (inserted directly, sharing one sealed key pair: uploads never read keys)
is built once and copied for each measurement, so every one starts from the same
state:

- end to end: ``devicefactory serve`` with its background workers; from the start
  of the multipart ``POST /devicefactory/v1/factory_actions`` until ``GET
  /factory_actions/:id`` shows ``success`` (polled every 0.2 s);
- in process: ``ActionRunner.run_once()`` on an action created with the service's
  own ``create_upload_action`` (the runner alone, no server);
- references: ``iter_upload`` over the same file (parse only), and SQLite's raw
  ``executemany`` UPDATE of the same 100,000 rows through the ``sqlite3`` module.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from bench.keycache import MASTER_KEY_FILE, cached_pairs
from bench.report import Check, median, write_alone_run
from bench.server import ServerProcess, database_url, devicefactory_server
from bench.world import EMAIL, create_module_maker, prepare_database, sign_in
from devicefactory.accounts import queries as account_queries
from devicefactory.accounts.service import actor_for
from devicefactory.actions.logfile import LogRecord, iter_upload
from devicefactory.actions.runner import ActionRunner
from devicefactory.actions.uploads import create_upload_action
from devicefactory.config import Settings
from devicefactory.db import make_engine, make_session_factory, session_scope, utcnow
from devicefactory.devices import queries as device_queries
from devicefactory.keys.crypto import SealedKeyPair
from devicefactory.storage import FileStore
from devicefactory.tables.actions import FactoryAction

LINES = 100_000
MODEL = "AY001MTP1"
INSERT_CHUNK = 20_000
ROUNDS = 2  # end to end and in process, alternating; each on a fresh copy of the database
PARSE_ROUNDS = 3
POLL_SECONDS = 0.2
ACTIONS_PATH = "/devicefactory/v1/factory_actions"
# Submit and validate, each as lines/s, against raw executemany UPDATE rows/s in the same run.
RATIO = 0.13
RESERVED_AT = datetime(2026, 11, 22, tzinfo=UTC)
# The timestamp SQLAlchemy writes for a UTC datetime into SQLite (the raw reference's value).
MANUFACTURED_AT = "2026-11-22 12:00:00.000000"
DOM_AT = "2016-11-24 10:34:23.000000"


def dsn(n: int) -> str:
    """The n-th device of the fleet (1-based)."""
    return f"AC000W{n:09d}"


def log_line(n: int) -> str:
    """A version-2 label line for device n, with its own mac and hwsig."""
    return f"2,1318462302,2016/11/24 10:34:23 UTC,label,0,{MODEL},{dsn(n)},{n:012x},WD101a,p{n},sig-{n},\n"


def insert_fleet(factory: sessionmaker[Session], oem_id: str, pair: SealedKeyPair) -> None:
    """``LINES`` reserved devices of ``oem_id``, in chunks through ``insert_devices``."""
    for start in range(1, LINES + 1, INSERT_CHUNK):
        with session_scope(factory) as session:
            device_queries.insert_devices(
                session,
                [
                    {
                        "dsn": dsn(n),
                        "model": MODEL,
                        "status": "reserved",
                        "public_key": pair.public_pem,
                        "sealed_private_key": pair.sealed_private,
                        "reserved_by_oem_id": oem_id,
                        "reserved_at": RESERVED_AT,
                        "datapoint_count": 0,
                        "last_job_failed": False,
                    }
                    for n in range(start, min(start + INSERT_CHUNK, LINES + 1))
                ],
            )


def build_base(workdir: Path) -> Path:
    """The database every measurement copies: schema, module maker, reserved fleet."""
    base = workdir / "base"
    base.mkdir()
    factory = prepare_database(database_url(base))
    oem_id = create_module_maker(factory, model=MODEL)
    insert_fleet(factory, oem_id, cached_pairs(1)[0])
    factory.kw["bind"].dispose()
    checkpoint(base / "bench.db")
    return base / "bench.db"


def checkpoint(db_file: Path) -> None:
    """Move everything from the WAL into the database file, so that copying the file copies it all."""
    connection = sqlite3.connect(db_file, isolation_level=None)
    try:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        connection.close()
    if busy:
        raise RuntimeError(f"could not checkpoint {db_file}")


def fresh_copy(base_db: Path, workdir: Path, name: str) -> Path:
    """A directory holding a copy of the base database as bench.db."""
    target = workdir / name
    target.mkdir()
    shutil.copyfile(base_db, target / "bench.db")
    return target


# --- references ------------------------------------------------------------------------


def parse_seconds(log_file: Path) -> float:
    """Seconds to parse the whole file with the service's own streaming parser, as the runner reads it."""
    started = time.perf_counter()
    with log_file.open("rb") as stream:
        records = sum(1 for line in iter_upload(stream) if isinstance(line, LogRecord))
    elapsed = time.perf_counter() - started
    if records != LINES:
        raise RuntimeError(f"the parser found {records} records, not {LINES}")
    return elapsed


def raw_update_seconds(directory: Path) -> float:
    """Seconds of one ``executemany`` UPDATE of every device, as manufacture changes it, and COMMIT.

    Through the ``sqlite3`` module with the service's own pragmas (WAL, synchronous=NORMAL,
    foreign keys on), on the same schema and indexes: what the database alone costs.
    """
    rows = [
        ("manufactured", MANUFACTURED_AT, f"{n:012x}", f"sig-{n}", DOM_AT, "WD101a", f"p{n}", 0, dsn(n))
        for n in range(1, LINES + 1)
    ]
    connection = sqlite3.connect(directory / "bench.db", isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", "synchronous=NORMAL"):
            connection.execute(f"PRAGMA {pragma}")
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        cursor = connection.executemany(
            "UPDATE devices SET status = ?, manufactured_at = ?, mac = ?, hwsig = ?, dom_at = ?, "
            "manuf_model = ?, manuf_sn = ?, last_job_failed = ? WHERE dsn = ?",
            rows,
        )
        connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if cursor.rowcount != LINES:
        raise RuntimeError(f"the raw UPDATE changed {cursor.rowcount} rows, not {LINES}")
    return elapsed


# --- the service -----------------------------------------------------------------------


@dataclass(frozen=True)
class InProcess:
    """The runner alone on one copy of the database."""

    seconds: float
    cpu_seconds: float
    batch_size: int


def in_process_run(directory: Path, log_file: Path) -> InProcess:
    """Create the action with the service call, then time ``ActionRunner.run_once()``."""
    url = database_url(directory)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    settings = Settings(database_url=url, master_key_file=MASTER_KEY_FILE)
    try:
        with factory() as session:
            user = account_queries.get_user_by_email(session, EMAIL)
            assert user is not None
            assert user.oem_id is not None
            actor = actor_for(user, account_queries.get_oem(session, user.oem_id))
        # A session of its own, used only after the file is stored: the store writes in short
        # transactions of its own, and SQLite's pool holds one connection.
        with session_scope(factory) as session, log_file.open("rb") as stream:
            action_id = create_upload_action(
                session,
                actor,
                upload_type="manufacture",
                validate_only=False,
                file_name=log_file.name,
                stream=stream,
                store=FileStore(factory),
                oem_host_version=None,
                now=utcnow(),
            ).id
        runner = ActionRunner(factory, settings)
        started, cpu_started = time.perf_counter(), time.process_time()
        worked = runner.run_once(threading.Event())
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        with factory() as session:
            action = session.scalars(select(FactoryAction).where(FactoryAction.id == action_id)).one()
            check_action(worked, action.status, action.applied)
            manufactured = session.scalar(text("SELECT count(*) FROM devices WHERE status = 'manufactured'"))
        if manufactured != LINES:
            raise RuntimeError(f"{manufactured} devices manufactured, not {LINES}")
    finally:
        engine.dispose()
    return InProcess(elapsed, cpu, settings.action_batch_size)


def check_action(worked: bool, status: str, applied: int) -> None:
    """The upload must have been worked, every line applied."""
    if not worked or status != "success" or applied != LINES:
        raise RuntimeError(f"upload ended {status} with {applied} of {LINES} lines applied")


@dataclass(frozen=True)
class EndToEnd:
    """One upload through a running server, and where its time went."""

    seconds: float
    post_seconds: float  # the multipart POST until its 202 answer
    queued_seconds: float  # created_at -> started_at (runner poll, claim)
    worked_seconds: float  # started_at -> finished_at (line counting, batches, finish)
    server_cpu_seconds: float  # web and worker processes together
    poll_ms: list[float]  # each GET /factory_actions/:id while waiting, in order
    finished_get_ms: float  # median of 5 GETs of the finished action (100,000 lines behind it)


def wait_for_workers(server: ServerProcess, log_file: Path, timeout: float = 60) -> None:
    """Until serve's worker process logs that its runner is up (its start is not the upload)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "background workers started" in log_file.read_text(errors="replace"):
            return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"the background workers did not start: {log_file.read_text()[-2000:]}")


def end_to_end_run(directory: Path, content: bytes, *, validate: bool = False) -> EndToEnd:
    """POST the file to a server with workers and poll the action until it has succeeded."""
    with devicefactory_server(directory, MASTER_KEY_FILE, web_workers=1, background_workers=True) as server:
        wait_for_workers(server, directory / "server.log")
        with httpx.Client(base_url=server.url, timeout=120) as client:
            headers = sign_in(client)
            cpu_before = server.cpu_seconds()
            started = time.perf_counter()
            response = client.post(
                ACTIONS_PATH,
                files={"file": ("factory.log", content, "text/plain")},
                data={"type": "manufacture", "validate_only": str(validate).lower()},
                headers=headers,
            )
            posted = time.perf_counter()
            if response.status_code != 202:
                raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
            action_id = response.json()["factory_action"]["id"]
            poll_ms: list[float] = []
            while True:
                asked = time.perf_counter()
                action = client.get(f"{ACTIONS_PATH}/{action_id}", headers=headers).json()["factory_action"]
                poll_ms.append((time.perf_counter() - asked) * 1000)
                if action["status"] in ("success", "failure"):
                    break
                time.sleep(POLL_SECONDS)
            finished = time.perf_counter()
            cpu = server.cpu_seconds() - cpu_before
            finished_get_ms = []
            for _ in range(5):
                asked = time.perf_counter()
                client.get(f"{ACTIONS_PATH}/{action_id}", headers=headers).raise_for_status()
                finished_get_ms.append((time.perf_counter() - asked) * 1000)
    progress = action["progress"]
    check_action(True, action["status"], progress["would_apply" if validate else "applied"])
    created, began, ended = action_times(directory, action_id)
    return EndToEnd(
        seconds=finished - started,
        post_seconds=posted - started,
        queued_seconds=(began - created).total_seconds(),
        worked_seconds=(ended - began).total_seconds(),
        server_cpu_seconds=cpu,
        poll_ms=poll_ms,
        finished_get_ms=median(finished_get_ms),
    )


def action_times(directory: Path, action_id: int) -> tuple[datetime, datetime, datetime]:
    """created_at, started_at and finished_at of the action, from the database (the API rounds to s)."""
    engine = make_engine(database_url(directory))
    try:
        with make_session_factory(engine)() as session:
            action = session.get(FactoryAction, action_id)
            assert action is not None
            assert action.started_at is not None
            assert action.finished_at is not None
            return action.created_at, action.started_at, action.finished_at
    finally:
        engine.dispose()


# --- the run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Every measurement of one run, in seconds for the whole file."""

    parse: list[float]
    raw_update: list[float]
    in_process: list[InProcess]
    end_to_end: list[EndToEnd]
    validate: list[EndToEnd]


def measure() -> Samples:
    """Build the base database and file once, then the references and alternating rounds."""
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        base_db = build_base(workdir)
        content = "".join(log_line(n) for n in range(1, LINES + 1)).encode()
        log_file = workdir / "factory.log"
        log_file.write_bytes(content)
        print(
            f"  {LINES:,} reserved devices and a {len(content) / 2**20:.1f} MiB log file "
            f"in {time.perf_counter() - started:.1f} s (untimed)",
            flush=True,
        )
        parse = [parse_seconds(log_file) for _ in range(PARSE_ROUNDS)]
        print(f"  parse: {', '.join(f'{s:.2f}' for s in parse)} s", flush=True)
        raw, in_process, end_to_end, validate = [], [], [], []
        for index in range(ROUNDS):
            raw.append(raw_update_seconds(fresh_copy(base_db, workdir, f"raw-{index}")))
            in_process.append(in_process_run(fresh_copy(base_db, workdir, f"runner-{index}"), log_file))
            end_to_end.append(end_to_end_run(fresh_copy(base_db, workdir, f"server-{index}"), content))
            validate.append(
                end_to_end_run(fresh_copy(base_db, workdir, f"validate-{index}"), content, validate=True)
            )
            print(
                f"  round {index + 1}: {describe_round(end_to_end[-1], in_process[-1], raw[-1])}; "
                f"validate end to end {validate[-1].seconds:.2f} s",
                flush=True,
            )
        return Samples(parse, raw, in_process, end_to_end, validate)


def describe_round(e2e: EndToEnd, runner: InProcess, raw: float) -> str:
    """One round as printed: where the end-to-end time went, the runner alone, the raw UPDATE."""
    return (
        f"end to end {e2e.seconds:.2f} s (POST {e2e.post_seconds:.2f} s, queued {e2e.queued_seconds:.2f} s, "
        f"worked {e2e.worked_seconds:.2f} s, server CPU {e2e.server_cpu_seconds:.1f} s; "
        f"{len(e2e.poll_ms)} polls, median {median(e2e.poll_ms):.0f} ms, max {max(e2e.poll_ms):.0f} ms; "
        f"GET of the finished action {e2e.finished_get_ms:.0f} ms); in process {runner.seconds:.2f} s "
        f"(CPU {runner.cpu_seconds:.1f} s); raw UPDATE {raw:.2f} s"
    )


def run() -> dict[str, Any]:
    """Measure, print one line and return the figures."""
    samples = measure()
    end_to_end = median([e.seconds for e in samples.end_to_end])
    validated = median([e.seconds for e in samples.validate])
    in_process = median([r.seconds for r in samples.in_process])
    parse, raw = median(samples.parse), median(samples.raw_update)
    rates = {
        "end_to_end": LINES / end_to_end,
        "validate_end_to_end": LINES / validated,
        "in_process_runner": LINES / in_process,
        "parse": LINES / parse,
        "raw_sqlite_update": LINES / raw,
    }
    checks = [
        Check("submit lines/s / raw UPDATE rows/s", rates["end_to_end"] / rates["raw_sqlite_update"], RATIO),
        Check(
            "validate lines/s / raw UPDATE rows/s",
            rates["validate_end_to_end"] / rates["raw_sqlite_update"],
            RATIO,
        ),
    ]
    print(
        f"upload: {LINES:,} lines; submit end to end {end_to_end:.2f} s = "
        f"{rates['end_to_end']:,.0f} lines/s, "
        f"ratio to raw UPDATE {checks[0].value:.3f} {checks[0].verdict()}; validate end to end "
        f"{validated:.2f} s = {rates['validate_end_to_end']:,.0f} lines/s, ratio {checks[1].value:.3f} "
        f"{checks[1].verdict()} (target {checks[0].target_text()}); in-process runner "
        f"{rates['in_process_runner']:,.0f} lines/s; parse {rates['parse']:,.0f} lines/s (ratio "
        f"{rates['end_to_end'] / rates['parse']:.3f}); raw SQLite UPDATE {rates['raw_sqlite_update']:,.0f} "
        f"rows/s (ratio {rates['end_to_end'] / rates['raw_sqlite_update']:.3f})"
    )
    return {
        "lines": LINES,
        "rounds": ROUNDS,
        "action_batch_size": samples.in_process[0].batch_size,
        "samples_s": {
            "parse": samples.parse,
            "raw_sqlite_update": samples.raw_update,
            "in_process_runner": [r.seconds for r in samples.in_process],
            "in_process_runner_cpu": [r.cpu_seconds for r in samples.in_process],
            "end_to_end": [asdict(e) for e in samples.end_to_end],
            "validate_end_to_end": [asdict(e) for e in samples.validate],
        },
        "end_to_end_s": end_to_end,
        "validate_end_to_end_s": validated,
        "in_process_runner_s": in_process,
        "cpu_s": {
            "in_process_runner": median([r.cpu_seconds for r in samples.in_process]),
            "server_end_to_end": median([e.server_cpu_seconds for e in samples.end_to_end]),
        },
        "rates_per_s": rates,
        "ratios": {
            "end_to_end_to_parse": rates["end_to_end"] / rates["parse"],
            "end_to_end_to_raw_update": rates["end_to_end"] / rates["raw_sqlite_update"],
            "end_to_end_to_in_process": rates["end_to_end"] / rates["in_process_runner"],
        },
        "checks": [check.as_dict() for check in checks],
    }


if __name__ == "__main__":
    begun = datetime.now(UTC)
    print(f"results: {write_alone_run('upload', run(), begun)}")
