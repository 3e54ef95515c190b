"""Shared fixtures: a migrated database (SQLite, or PostgreSQL when
DEVICEFACTORY_TEST_DATABASE_URL is set), the app over real HTTP semantics, and a
world of OEMs and users of every role.

Each test starts on an empty schema: tables are emptied after every test rather than
rolled back, because what the service promises is about commits (several
connections, crash recovery, concurrent reservations), so tests commit for real.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import secrets as account_secrets
from devicefactory.config import Settings
from devicefactory.db import Base, make_engine, make_session_factory, normalize_url
from devicefactory.keys.crypto import MasterKey
from devicefactory.migrate import upgrade_database
from devicefactory.tables import Base as _AllModels  # noqa: F401 - complete metadata
from tests.keycache import KeyCache
from tests.live import LiveServer
from tests.world import World, build_world

TEST_DATABASE_URL = os.environ.get("DEVICEFACTORY_TEST_DATABASE_URL")
LIVE_FIXTURES = frozenset({"live_server", "working_server"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``live`` every test that runs a real server process (CI runs them again under a
    shifted clock: that is where a frozen test clock would meet a real one)."""
    for item in items:
        module = getattr(item, "module", None)
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & LIVE_FIXTURES or getattr(module, "LiveServer", None) is LiveServer:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    # Production argon2 costs ~50 ms a hash; tests create hundreds of users.
    original = account_secrets._hasher
    account_secrets._hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    yield
    account_secrets._hasher = original


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    if TEST_DATABASE_URL:
        if worker_id == "master":
            return TEST_DATABASE_URL
        return _database_of_worker(TEST_DATABASE_URL, worker_id)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def _database_of_worker(url: str, worker_id: str) -> str:
    """Parallel workers (pytest -n) each get a database of their own beside the given one."""
    base = make_url(normalize_url(url))
    name = f"{base.database}_{worker_id}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
        if exists is None:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    reset_schema(engine)
    upgrade_database(engine)
    yield engine
    engine.dispose()


def reset_schema(engine: Engine) -> None:
    """Start the session from an empty database."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    else:
        existing = MetaData()
        existing.reflect(engine)
        existing.drop_all(engine)


def empty_tables(engine: Engine) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_session_factory(engine)
    empty_tables(engine)


def _real_now() -> datetime:
    # Starts from the real time (whole seconds): tokens it issues must stay valid for a
    # live server on the real clock, whatever day the suite runs.
    return datetime.now(UTC).replace(microsecond=0)


# Tests that build a history over several days start it at 09:00 UTC of the day the
# suite runs (``FrozenClock.start_timeline``) and name their dates with ``day(n)``, so
# the same test holds on any date.
DAY0: date = datetime.now(UTC).date()


def day(offset: int) -> str:
    """The ISO date ``offset`` days after the timeline's first day."""
    return (DAY0 + timedelta(days=offset)).isoformat()


@dataclass
class FrozenClock:
    """A clock that only moves when a test says so; it starts at the real time."""

    now: datetime = field(default_factory=_real_now)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def start_timeline(self) -> None:
        """09:00 UTC of ``DAY0``: the first moment of a history built day by day."""
        self.now = datetime.combine(DAY0, time(9), UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(scope="session")
def master_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "master.key"


@pytest.fixture(scope="session")
def key_cache(master_key_file: Path) -> KeyCache:
    return KeyCache(MasterKey.load_or_create(master_key_file))


@pytest.fixture
def settings(tmp_path: Path, database_url: str, master_key_file: Path) -> Settings:
    return Settings(
        database_url=database_url,
        master_key_file=master_key_file,
        run_workers=False,
        key_pool_target=0,
    )


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session], clock: FrozenClock) -> FastAPI:
    from devicefactory.app import create_app

    return create_app(settings, session_factory=session_factory, clock=clock)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def world(client: TestClient, session_factory: sessionmaker[Session]) -> World:
    return build_world(client, session_factory)


@pytest.fixture
def pool(key_cache: KeyCache, session_factory: sessionmaker[Session]) -> Callable[[int], None]:
    """``pool(n)`` puts n distinct key pairs into the key pool."""

    def fill(count: int) -> None:
        key_cache.fill_pool(session_factory, count)

    return fill


@pytest.fixture
def live_server(
    database_url: str, master_key_file: Path, tmp_path: Path, session_factory: sessionmaker[Session]
) -> Iterator[LiveServer]:
    """A started server on the test database (emptied after the test like any other)."""
    server = LiveServer(database_url, master_key_file, tmp_path, web_workers=2)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def run_actions(session_factory: sessionmaker[Session], settings: Settings) -> Callable[[], int]:
    """Work every queued factory action now, as the background runner would; returns how many."""
    from devicefactory.actions.runner import ActionRunner

    runner = ActionRunner(session_factory, settings)

    def run() -> int:
        done = 0
        while runner.run_once():
            done += 1
        return done

    return run
