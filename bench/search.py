"""DSN search p95 over 1,000,000 devices, on SQLite and PostgreSQL, against a primary-key lookup.

Run alone: ``python -m bench.search``. The primary figure is the service call the
search endpoint makes, ``search_devices(session, actor, parse_search(params))``,
each in a session of its own (as a request has), timed from parsing the parameters
until the ORM objects are loaded. The mix: DSN prefixes of four lengths, an exact
mac, status + model, a one-week date range and a wildcard in the middle of a DSN,
each for an Ayla::Admin and for an OEM-scoped ModuleManufacturer, interleaved.
Reference: ``SELECT devices.* WHERE dsn = ?`` (Core, a session of its own), one
between every two searches. The same mix through HTTP against ``devicefactory
serve`` is reported too, for information.

The fleet is built once per migration head and cached: the SQLite file under
``bench/results/`` and the PostgreSQL database (``BENCH_SEARCH_PG_URL``, by default
``bench_search`` on the local server), marked complete by a comment on the database.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bench.keycache import MASTER_KEY_FILE, cached_pairs
from bench.report import RESULTS_DIR, Check, median, percentile, write_alone_run
from bench.server import devicefactory_server
from bench.world import PASSWORD, prepare_database
from devicefactory.accounts import queries as account_queries
from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Actor, Role
from devicefactory.db import make_engine, make_session_factory, session_scope
from devicefactory.devices.queries import DEVICES, search_devices, search_statement
from devicefactory.devices.search import parse_search
from devicefactory.keys.crypto import SealedKeyPair
from devicefactory.migrate import alembic_config
from devicefactory.tables.devices import Device

FLEET = 1_000_000
BLOCK = 1_000  # one reservation: contiguous DSNs of one OEM and one model
MODULE_MAKERS = 4
PRODUCT_OEMS = 2
MODELS = ("AY001MTP1", "AY002MTP2", "AY003MTP3")
BUILD_VERSION = 1  # bump when the fleet below changes: the caches are rebuilt
INSERT_CHUNK = 20_000
ADMIN_EMAIL = "admin@search.bench.example"
MAKER_EMAIL = "maker@search.bench.example"
PG_URL = os.environ.get("BENCH_SEARCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/bench_search")
ROUNDS = 30  # timed samples of each (query kind, actor), round-robin
HTTP_ROUNDS = 10
SEED = 2026
TARGET_P95_MS = 25.0
FIRST_RESERVE = datetime(2025, 11, 22, tzinfo=UTC)
YEAR = timedelta(days=365)
DEVICES_PATH = "/devicefactory/v1/devices"


# --- the fleet: every device's values are a pure function of its number n (1-based) -------


def dsn(n: int) -> str:
    """The n-th DSN."""
    return f"AC000W{n:09d}"


def scramble(n: int) -> int:
    """A well-mixed 32-bit number for n (Knuth's multiplicative hash)."""
    return (n * 2654435761) % 2**32


def maker_index(n: int) -> int:
    """Which module maker reserved device n: blocks of 1,000 in turn."""
    return ((n - 1) // BLOCK) % MODULE_MAKERS


def model_of(n: int) -> str:
    """Its model: each maker's successive blocks cycle through the models."""
    return MODELS[((n - 1) // BLOCK // MODULE_MAKERS) % len(MODELS)]


def status_of(n: int) -> str:
    """DSNs are cut in time order: the newest 5 % and 2 % scattered are still reserved,
    most devices of the oldest 80 % are provisioned, the rest manufactured."""
    mixed = scramble(n) % 100
    if n > FLEET * 0.95 or mixed < 2:
        return "reserved"
    if n < FLEET * 0.8 and mixed < 72:
        return "provisioned"
    return "manufactured"


def mac_of(n: int) -> str:
    """A unique mac (multiplying by an odd number is a bijection modulo 2**48)."""
    return f"{(n * 0x9E3779B97F4B) % 2**48:012x}"


def device_values(n: int, makers: list[str], owners: list[str], pair: SealedKeyPair) -> dict[str, Any]:
    """Every column of device n, as the service would have written it."""
    mixed, status = scramble(n), status_of(n)
    reserved_at = FIRST_RESERVE + YEAR * n / FLEET
    values: dict[str, Any] = {
        "dsn": dsn(n),
        "model": model_of(n),
        "status": status,
        "public_key": pair.public_pem,
        "sealed_private_key": pair.sealed_private,
        "master_key_id": None,  # sealed under the bench's configured master key
        "reserved_by_oem_id": makers[maker_index(n)],
        "owner_oem_id": None,
        "reserve_action_id": None,
        "reserved_at": reserved_at,
        "manufactured_at": None,
        "provisioned_at": None,
        "verified_at": None,
        "mac": None,
        "hwsig": None,
        "dom_at": None,
        "manuf_model": None,
        "manuf_sn": None,
        "odm": None,
        "module_sw_version": None,
        "oem_host_version": None,
        "wifi_setup_key": None,
        "ads_connect_flag": None,
        "oem_model": None,
        "template_id": None,
        "registered_user": None,
        "datapoint_count": 0,
        "last_job_failed": mixed % 97 == 0,
    }
    if status != "reserved":
        manufactured_at = reserved_at + timedelta(days=1 + mixed % 14)
        values.update(
            manufactured_at=manufactured_at,
            mac=mac_of(n),
            hwsig=f"hw-{mixed:08x}-{n}",
            dom_at=manufactured_at.replace(microsecond=0) - timedelta(hours=1),
            manuf_model="WD101a",
            manuf_sn=f"p{n}",
        )
    if status == "provisioned":
        values.update(
            provisioned_at=values["manufactured_at"] + timedelta(days=10 + mixed % 30),
            owner_oem_id=owners[mixed % len(owners)],
            oem_model=f"product-{mixed % 5}",
            ads_connect_flag=True,
            module_sw_version="ADA 1.9",
        )
    return values


COLUMNS = tuple(column.name for column in DEVICES.columns)


@dataclass(frozen=True)
class Accounts:
    """The OEMs and the two users the bench searches as."""

    makers: list[str]
    owners: list[str]


def create_accounts(factory: sessionmaker[Session]) -> Accounts:
    """Module makers, product OEMs, models, an Ayla::Admin and a ModuleManufacturer of maker 0."""
    with session_scope(factory) as session:
        makers = [
            accounts.create_oem(session, name=f"Search Modules {i}", module_manufacturer=True).oem_id
            for i in range(MODULE_MAKERS)
        ]
        owners = [
            accounts.create_oem(session, name=f"Search Products {i}").oem_id for i in range(PRODUCT_OEMS)
        ]
        for model in MODELS:
            accounts.create_model(session, name=model, kind="black_box")
        accounts.create_user(
            session, None, email=ADMIN_EMAIL, password=PASSWORD, role=Role.AYLA_ADMIN, oem_id=None
        )
        accounts.create_user(
            session,
            None,
            email=MAKER_EMAIL,
            password=PASSWORD,
            role=Role.MODULE_MANUFACTURER,
            oem_id=makers[0],
        )
    return Accounts(makers, owners)


def fleet_rows(found: Accounts) -> Iterator[dict[str, Any]]:
    """Every device, in DSN order."""
    pair = cached_pairs(1)[0]
    for n in range(1, FLEET + 1):
        yield device_values(n, found.makers, found.owners, pair)


def migration_head() -> str:
    """The Alembic head the caches are keyed by."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def cache_key() -> str:
    """What a cached fleet must have been built for."""
    return f"head {migration_head()}, fleet v{BUILD_VERSION}, {FLEET} devices"


# --- SQLite -----------------------------------------------------------------------------


def sqlite_cache_file() -> Path:
    """The cached SQLite fleet of this migration head."""
    return RESULTS_DIR / f"search-{migration_head()}-v{BUILD_VERSION}.db"


def ensure_sqlite() -> str:
    """The URL of the cached SQLite fleet, building it first if needed."""
    path = sqlite_cache_file()
    if path.exists():
        return f"sqlite:///{path}"
    for stale in RESULTS_DIR.glob("search-*.db*"):
        stale.unlink()  # another head's or an interrupted build: 2 GB each
    building = path.with_name(path.name + ".building")
    print(f"  building the SQLite fleet ({FLEET:,} devices, cached as {path.name}) ...", flush=True)
    started = time.perf_counter()
    factory = prepare_database(f"sqlite:///{building}")
    found = create_accounts(factory)
    factory.kw["bind"].dispose()
    fill_sqlite(building, found)
    building.rename(path)
    for leftover in RESULTS_DIR.glob(f"{building.name}*"):
        leftover.unlink()  # -wal, -shm, the service's -writer.lock: nothing of them is needed
    print(f"  ... done in {time.perf_counter() - started:.0f} s", flush=True)
    return f"sqlite:///{path}"


def _sqlite_value(value: Any) -> Any:
    """A value as SQLAlchemy stores it in SQLite (datetimes as UTC text, booleans as 0/1)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


def fill_sqlite(path: Path, found: Accounts) -> None:
    """Insert the fleet with raw executemany in chunks, then ANALYZE (a bulk load: no fsync)."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")  # 1 GB: the indexes stay in memory
        statement = f"INSERT INTO devices ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        rows = fleet_rows(found)
        while chunk := [tuple(_sqlite_value(row[c]) for c in COLUMNS) for row in _take(rows, INSERT_CHUNK)]:
            connection.execute("BEGIN")
            connection.executemany(statement, chunk)
            connection.execute("COMMIT")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _take(rows: Iterator[dict[str, Any]], count: int) -> Iterator[dict[str, Any]]:
    """The next ``count`` rows (fewer at the end)."""
    for _ in range(count):
        row = next(rows, None)
        if row is None:
            return
        yield row


# --- PostgreSQL -------------------------------------------------------------------------


def _maintenance_engine() -> Engine:
    """The server's ``postgres`` database, autocommit (to create, drop and mark the bench's)."""
    return create_engine(make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")


def ensure_postgres() -> str | None:
    """The URL of the cached PostgreSQL fleet, building it if needed; None if the server is down."""
    url = make_url(PG_URL)
    admin = _maintenance_engine()
    try:
        with admin.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            )
            marker = connection.scalar(
                text("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = :name"),
                {"name": url.database},
            )
            if exists and marker == cache_key():
                return PG_URL
            print(
                f"  building the PostgreSQL fleet ({FLEET:,} devices, database {url.database}) ...",
                flush=True,
            )
            if exists:
                connection.exec_driver_sql(f'DROP DATABASE "{url.database}"')
            connection.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    except OperationalError as error:
        print(f"  PostgreSQL SKIPPED: {url.render_as_string()} is unreachable ({error.orig})", flush=True)
        return None
    finally:
        admin.dispose()
    started = time.perf_counter()
    factory = prepare_database(PG_URL)
    try:
        fill_postgres(factory.kw["bind"], create_accounts(factory))
    finally:
        factory.kw["bind"].dispose()
    admin = _maintenance_engine()
    try:
        with admin.connect() as connection:  # only now is the cache complete
            connection.exec_driver_sql(f"COMMENT ON DATABASE \"{url.database}\" IS '{cache_key()}'")
    finally:
        admin.dispose()
    print(f"  ... done in {time.perf_counter() - started:.0f} s", flush=True)
    return PG_URL


def fill_postgres(engine: Engine, found: Accounts) -> None:
    """COPY the fleet through psycopg, then VACUUM ANALYZE (what autovacuum would do)."""
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY devices ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in fleet_rows(found):
                copy.write_row(tuple(row[c] for c in COLUMNS))
        connection.commit()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE devices")
        connection.autocommit = False
    finally:
        raw.close()


# --- the query mix ----------------------------------------------------------------------


class Sampler:
    """Random devices an actor can see (an OEM-scoped actor: its own blocks)."""

    def __init__(self, rng: random.Random, maker: int | None) -> None:
        self.rng = rng
        self.maker = maker

    def device(self) -> int:
        """A random visible device number."""
        if self.maker is None:
            return self.rng.randint(1, FLEET)
        blocks = FLEET // BLOCK // MODULE_MAKERS
        block = self.rng.randrange(blocks) * MODULE_MAKERS + self.maker
        return block * BLOCK + self.rng.randint(1, BLOCK)

    def made_device(self) -> int:
        """A random visible device that has been manufactured (it has a mac)."""
        while status_of(n := self.device()) == "reserved":
            pass
        return n

    def day(self) -> datetime:
        """A random day of the fleet's year."""
        return FIRST_RESERVE + timedelta(days=self.rng.randrange(1, 358))


def _colon_mac(mac: str) -> str:
    """A mac as people type it."""
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2)).upper()


def _one_week(sampler: Sampler) -> dict[str, str]:
    """Devices manufactured in one random week of the fleet's year."""
    day = sampler.day()
    return {
        "manufactured_after": f"{day:%Y-%m-%d}",
        "manufactured_before": f"{day + timedelta(days=7):%Y-%m-%d}",
    }


def _middle_wildcard(sampler: Sampler) -> dict[str, str]:
    """The first 11 characters of a DSN, a star, its last two: ~100 matches out of 10,000."""
    name = dsn(sampler.device())
    return {"dsn": name[:11] + "*" + name[-2:]}


KINDS: dict[str, Callable[[Sampler], dict[str, str]]] = {
    "dsn prefix 14 chars (~10 rows)": lambda s: {"dsn": dsn(s.device())[:14] + "*"},
    "dsn prefix 13 chars (~100 rows)": lambda s: {"dsn": dsn(s.device())[:13] + "*"},
    "dsn prefix 11 chars (~10k rows)": lambda s: {"dsn": dsn(s.device())[:11] + "*"},
    "dsn prefix 9 chars (~1M rows)": lambda s: {"dsn": "AC000W000*"},
    "exact mac": lambda s: {"mac": _colon_mac(mac_of(s.made_device()))},
    "status + model, limit 50": lambda s: {
        "status": s.rng.choice(("reserved", "manufactured", "provisioned")),
        "model": s.rng.choice(MODELS),
        "limit": "50",
    },
    "manufactured in one week": _one_week,
    "wildcard in the middle": _middle_wildcard,
}
KIND_NAMES = list(KINDS)


def load_actors(factory: sessionmaker[Session]) -> dict[str, Actor]:
    """The two actors, as authentication would make them."""
    found = {}
    with factory() as session:
        for label, email in (("Ayla::Admin", ADMIN_EMAIL), ("ModuleManufacturer", MAKER_EMAIL)):
            user = account_queries.get_user_by_email(session, email)
            assert user is not None
            oem = account_queries.get_oem(session, user.oem_id) if user.oem_id else None
            found[label] = accounts.actor_for(user, oem)
    return found


def sampler_for(actor: Actor, rng: random.Random, makers: list[str]) -> Sampler:
    """What the actor can see."""
    return Sampler(rng, None if actor.is_platform_admin else makers.index(actor.oem_id or ""))


def maker_ids(factory: sessionmaker[Session]) -> list[str]:
    """The module makers' OEM ids, in the order the fleet numbers them."""
    with factory() as session:
        oems = account_queries.list_oems(session)
        by_name = {oem.name: oem.oem_id for oem in oems}
    return [by_name[f"Search Modules {i}"] for i in range(MODULE_MAKERS)]


@dataclass
class Timings:
    """Samples (ms) per (kind, actor), rows found, and the reference's samples."""

    searches: dict[tuple[str, str], list[float]]
    rows: dict[tuple[str, str], list[int]]
    reference: list[float]


def timed_search(factory: sessionmaker[Session], actor: Actor, params: dict[str, str]) -> tuple[float, int]:
    """One search as the endpoint runs it, in a session of its own: ms and rows."""
    started = time.perf_counter()
    with factory() as session:
        devices = search_devices(session, actor, parse_search(params))
    return (time.perf_counter() - started) * 1000, len(devices)


def timed_lookup(factory: sessionmaker[Session], number: int) -> float:
    """The reference: one primary-key lookup of every column, in a session of its own (ms)."""
    started = time.perf_counter()
    with factory() as session:
        rows = session.execute(select(DEVICES).where(DEVICES.c.dsn == dsn(number))).all()
    elapsed = (time.perf_counter() - started) * 1000
    if len(rows) != 1:
        raise RuntimeError(f"{dsn(number)} not found")
    return elapsed


def measure_service(url: str) -> tuple[Timings, dict[str, str]]:
    """Warm up once, then ROUNDS interleaved rounds of every (kind, actor) and the reference."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        actors = load_actors(factory)
        makers = maker_ids(factory)
        rng = random.Random(SEED)
        samplers = {label: sampler_for(actor, rng, makers) for label, actor in actors.items()}
        timings = Timings({}, {}, [])
        plans = {}
        for round_no in range(ROUNDS + 1):  # round 0 warms up (caches, statement cache)
            for kind in KIND_NAMES:
                for label, actor in actors.items():
                    params = KINDS[kind](samplers[label])
                    elapsed, found = timed_search(factory, actor, params)
                    reference = timed_lookup(factory, rng.randint(1, FLEET))
                    if round_no == 0:
                        plans[f"{kind} / {label}"] = query_plan(factory, actor, params)
                        continue
                    timings.searches.setdefault((kind, label), []).append(elapsed)
                    timings.rows.setdefault((kind, label), []).append(found)
                    timings.reference.append(reference)
        return timings, plans
    finally:
        engine.dispose()


def query_plan(factory: sessionmaker[Session], actor: Actor, params: dict[str, str]) -> str:
    """The search's plan: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN ANALYZE (actual rows).

    The statement and parameters are the ones the driver really got, caught on their way.
    """
    sent: list[tuple[str, Any]] = []

    def catch(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    with factory() as session:
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", catch)
        try:
            session.scalars(search_statement(session, actor, parse_search(params))).all()
        finally:
            event.remove(connection, "before_cursor_execute", catch)
        statement, parameters = sent[-1]
        sqlite = connection.dialect.name == "sqlite"
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
        rows = connection.exec_driver_sql(prefix + statement, parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def measure_http(url: str, workdir: Path) -> dict[tuple[str, str], list[float]]:
    """The same mix through ``GET /devicefactory/v1/devices`` on ``serve`` (one web worker)."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        actors = load_actors(factory)
        makers = maker_ids(factory)
    finally:
        engine.dispose()
    rng = random.Random(SEED + 1)
    samplers = {label: sampler_for(actor, rng, makers) for label, actor in actors.items()}
    samples: dict[tuple[str, str], list[float]] = {}
    with (
        devicefactory_server(workdir, MASTER_KEY_FILE, web_workers=1, url=url) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        headers = {label: _sign_in(client, actor.email) for label, actor in actors.items()}
        for round_no in range(HTTP_ROUNDS + 1):
            for kind in KIND_NAMES:
                for label in actors:
                    params = KINDS[kind](samplers[label])
                    started = time.perf_counter()
                    response = client.get(DEVICES_PATH, params=params, headers=headers[label])
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        raise RuntimeError(
                            f"search {params} answered {response.status_code}: {response.text}"
                        )
                    if round_no:
                        samples.setdefault((kind, label), []).append(elapsed)
    return samples


def _sign_in(client: httpx.Client, email: str) -> dict[str, str]:
    """Authorization headers of one of the bench's users."""
    response = client.post("/users/sign_in.json", json={"user": {"email": email, "password": PASSWORD}})
    response.raise_for_status()
    return {"Authorization": f"auth_token {response.json()['access_token']}"}


def fleet_size(url: str) -> int:
    """Devices in the database (a sanity check of the cache)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Device)) or 0
    finally:
        engine.dispose()


# --- the run ----------------------------------------------------------------------------


def stats(samples: list[float]) -> dict[str, float]:
    """p50 and p95."""
    return {"p50": percentile(samples, 50), "p95": percentile(samples, 95)}


def summarise(name: str, timings: Timings, http: dict[tuple[str, str], list[float]]) -> dict[str, Any]:
    """Per-kind and overall percentiles of one database, printed as a table."""
    every = [ms for samples in timings.searches.values() for ms in samples]
    overall, reference = stats(every), stats(timings.reference)
    http_every = [ms for samples in http.values() for ms in samples]
    per_kind: dict[str, dict[str, Any]] = {}
    print(f"  {name}: {'query':<32} {'actor':<18} {'p50 ms':>7} {'p95 ms':>7} {'rows':>5} {'HTTP p95':>8}")
    for (kind, label), samples in timings.searches.items():
        kind_stats: dict[str, Any] = {**stats(samples), "rows_median": median(timings.rows[(kind, label)])}
        kind_stats["http"] = stats(http.get((kind, label), []))
        per_kind[f"{kind} / {label}"] = kind_stats
        print(
            f"  {name}: {kind:<32} {label:<18} {kind_stats['p50']:7.2f} {kind_stats['p95']:7.2f} "
            f"{kind_stats['rows_median']:5.0f} {kind_stats['http']['p95']:8.2f}"
        )
    http_text = (
        f"; HTTP p50 {percentile(http_every, 50):.1f} ms, p95 {percentile(http_every, 95):.1f} ms"
        if http_every
        else ""
    )
    print(
        f"  {name}: all searches p50 {overall['p50']:.2f} ms, p95 {overall['p95']:.2f} ms; primary-key "
        f"lookup p50 {reference['p50']:.3f} ms, p95 {reference['p95']:.3f} ms{http_text}",
        flush=True,
    )
    return {
        "overall_ms": overall,
        "reference_pk_lookup_ms": reference,
        "ratio_p95_to_pk_lookup": overall["p95"] / reference["p95"],
        "http_ms": stats(http_every) if http_every else None,
        "per_kind_ms": per_kind,
        "samples_ms": {f"{kind} / {label}": samples for (kind, label), samples in timings.searches.items()},
        "reference_samples_ms": timings.reference,
    }


def run() -> dict[str, Any]:
    """Build or reuse both fleets, measure each database, print one line and return the figures."""
    databases = {"sqlite": ensure_sqlite(), "postgresql": ensure_postgres()}
    results: dict[str, Any] = {"fleet": FLEET, "rounds": ROUNDS, "http_rounds": HTTP_ROUNDS, "databases": {}}
    checks = []
    lines = []
    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        for name, url in databases.items():
            if url is None:
                results["databases"][name] = {"skipped": "server unreachable"}
                lines.append(f"{name} SKIPPED (unreachable)")
                continue
            size = fleet_size(url)
            if size != FLEET:
                raise RuntimeError(f"the cached {name} fleet has {size} devices, not {FLEET}; delete it")
            timings, plans = measure_service(url)
            workdir = Path(tmp) / name
            workdir.mkdir()
            http = measure_http(url, workdir)
            summary = summarise(name, timings, http)
            summary["plans"] = plans
            results["databases"][name] = summary
            check = Check(
                f"DSN search p95 ({name})", summary["overall_ms"]["p95"], TARGET_P95_MS, "ms", False
            )
            checks.append(check)
            lines.append(
                f"{name} p95 {check.value:.1f} ms (p50 {summary['overall_ms']['p50']:.1f}; target "
                f"{check.target_text()}) {check.verdict()}, primary-key lookup p95 "
                f"{summary['reference_pk_lookup_ms']['p95']:.2f} ms, "
                f"ratio {summary['ratio_p95_to_pk_lookup']:.0f}x"
            )
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"search ({FLEET:,} devices): " + "; ".join(lines))
    results["checks"] = [check.as_dict() for check in checks]
    return results


if __name__ == "__main__":
    begun = datetime.now(UTC)
    print(f"results: {write_alone_run('search', run(), begun)}")
