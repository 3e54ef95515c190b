"""Hot statements on the driver's own cursor (db.execute_many, execute_one, fetch_rows)
answer exactly what SQLAlchemy's own execution answers, and fail the same way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from devicefactory.db import (
    UTCDateTime,
    execute_many,
    execute_one,
    fetch_rows,
    is_statement_timeout,
    make_engine,
)

METADATA = MetaData()
SAMPLES = Table(
    "driver_statement_samples",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("owner", String(8)),
    Column("at", UTCDateTime),
    Column("flag", Boolean),
)
MOMENT = datetime(2026, 12, 4, 21, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
def samples(engine: Engine) -> Iterator[Table]:
    METADATA.create_all(engine)
    try:
        yield SAMPLES
    finally:
        METADATA.drop_all(engine)


def _insert(names: tuple[str, ...]) -> object:
    return insert(SAMPLES).values({name: bindparam(name) for name in names})


def test_rows_read_as_sqlalchemy_reads_them(engine: Engine, samples: Table) -> None:
    rows = [
        {"id": 1, "owner": "A", "at": MOMENT, "flag": True},
        {"id": 2, "owner": "B", "at": None, "flag": False},
    ]
    query = select(samples.c.id, samples.c.at, samples.c.flag).where(samples.c.owner == bindparam("owner"))
    with engine.begin() as connection:
        execute_many(connection, lambda: _insert(("id", "owner", "at", "flag")), rows, key=("test", "insert"))
        for owner in ("A", "B"):
            by_sqlalchemy = [tuple(row) for row in connection.execute(query, {"owner": owner})]
            by_driver = fetch_rows(connection, lambda: query, {"owner": owner}, key=("test", "by owner"))
            assert by_driver == by_sqlalchemy
    assert by_driver == [(2, None, False)]
    with engine.connect() as connection:
        assert fetch_rows(connection, lambda: query, {"owner": "A"}, key=("test", "by owner")) == [
            (1, MOMENT, True)  # an aware UTC datetime, a bool: not SQLite's text and 0/1
        ]


def test_literals_are_kept_but_a_named_parameter_always_comes_with_the_call(
    engine: Engine, samples: Table
) -> None:
    """A statement built once for one caller must never answer another with the first's
    values: ``tenant_oem`` is named, so it is never taken from the statement."""
    first_caller = select(samples.c.id).where(
        samples.c.id > 0, samples.c.owner == bindparam("tenant_oem", "A")
    )
    with engine.begin() as connection:
        connection.execute(insert(samples), [{"id": 1, "owner": "A"}, {"id": 2, "owner": "B"}])
        assert fetch_rows(connection, lambda: first_caller, {"tenant_oem": "B"}, key=("test", "tenant")) == [
            (2,)
        ]
        with pytest.raises(KeyError):
            fetch_rows(connection, lambda: first_caller, {}, key=("test", "tenant"))


def test_errors_are_sqlalchemy_s_own(engine: Engine, samples: Table) -> None:
    """A unique-index race must stay an IntegrityError: the manufacture path catches it."""
    with engine.connect() as connection, connection.begin():
        execute_one(
            connection, lambda: _insert(("id", "owner")), {"id": 7, "owner": "A"}, key=("test", "one")
        )
        with pytest.raises(IntegrityError):
            execute_one(
                connection, lambda: _insert(("id", "owner")), {"id": 7, "owner": "B"}, key=("test", "one")
            )


def test_a_returning_insert_gives_its_first_column(engine: Engine, samples: Table) -> None:
    statement = insert(samples).values(owner=bindparam("owner")).returning(samples.c.id)
    with engine.begin() as connection:
        first = execute_one(connection, lambda: statement, {"owner": "A"}, key=("test", "returning"))
        second = execute_one(connection, lambda: statement, {"owner": "A"}, key=("test", "returning"))
    assert isinstance(first, int)
    assert second == first + 1


def test_sqlite_statement_deadline_stops_a_long_statement_only(tmp_path: Path) -> None:
    """The deadline is per statement, set while it runs: a long one stops, and a short one
    after a long pause does not meet an old deadline."""
    engine = make_engine(f"sqlite:///{tmp_path / 'deadline.db'}", statement_timeout=0.3)
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n"
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
            time.sleep(0.5)  # longer than the deadline: no statement runs meanwhile
            assert connection.exec_driver_sql("SELECT 2").scalar() == 2
            started = time.monotonic()
            with pytest.raises(OperationalError) as stopped:
                connection.exec_driver_sql(endless).scalar()
            assert is_statement_timeout(stopped.value)
            assert time.monotonic() - started < 10
            assert connection.exec_driver_sql("SELECT 3").scalar() == 3  # the connection still works
    finally:
        engine.dispose()


def test_a_statement_with_an_in_list_answers_the_same(engine: Engine, samples: Table) -> None:
    """An IN list's SQL is only complete with its values: such a statement still answers."""
    query = select(samples.c.id).where(samples.c.owner.in_(["A", "C"]), samples.c.id >= bindparam("least"))
    with engine.begin() as connection:
        connection.execute(
            insert(samples), [{"id": 1, "owner": "A"}, {"id": 2, "owner": "B"}, {"id": 3, "owner": "C"}]
        )
        assert fetch_rows(connection, lambda: query, {"least": 1}, key=("test", "in list")) == [(1,), (3,)]
        assert execute_one(connection, lambda: query, {"least": 2}, key=("test", "in list")) == 3


def test_a_savepoint_keeps_or_undoes_its_own_work_only(engine: Engine, samples: Table) -> None:
    """Savepoints (one per group-committed line call; on SQLite sent to the driver)."""
    with engine.begin() as connection:
        connection.execute(insert(samples), [{"id": 1, "owner": "outer"}])
        with connection.begin_nested():
            connection.execute(insert(samples), [{"id": 2, "owner": "kept"}])
        undone = connection.begin_nested()
        connection.execute(insert(samples), [{"id": 3, "owner": "undone"}])
        undone.rollback()
        for _ in range(3):  # a name is never used twice, and none is left open
            with connection.begin_nested():
                pass
    with engine.connect() as connection:
        assert connection.execute(select(samples.c.id).order_by(samples.c.id)).scalars().all() == [1, 2]


def test_sqlite_writer_lock_is_handed_on_only_after_the_commit(tmp_path: Path) -> None:
    """The next writer (another process) must not find the previous one still committing:
    when the writer lock is released, the transaction is over. A refused COMMIT (a
    deferred foreign key) rolls back and leaves the connection clean."""
    import fcntl

    from sqlalchemy import event, text

    engine = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
            connection.execute(text("CREATE TABLE child (parent INTEGER REFERENCES parent (id))"))
        seen: list[tuple[bool, bool]] = []

        def after_release(connection: Any) -> None:  # listeners run in order: the lock's first
            with open(f"{tmp_path / 'lock.db'}-writer.lock", "a+b") as other:
                free = True
                try:
                    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    free = False
            seen.append((free, connection.connection.dbapi_connection.in_transaction))

        event.listen(engine, "commit", after_release)
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO parent VALUES (1)"))
        assert seen == [(True, False)]  # lock free, and the COMMIT already done

        def orphan() -> None:  # refused at COMMIT only
            with engine.begin() as connection:
                connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
                connection.execute(text("INSERT INTO child VALUES (7)"))

        with pytest.raises(IntegrityError):
            orphan()
        with engine.connect() as connection:
            assert not connection.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
            assert connection.execute(text("SELECT count(*) FROM child")).scalar() == 0
    finally:
        engine.dispose()
