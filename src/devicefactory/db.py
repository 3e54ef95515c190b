"""Database engine, declarative base and transaction scopes."""

from __future__ import annotations

import fcntl
import math
import sqlite3
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import DateTime, MetaData, Table, TypeDecorator, bindparam, create_engine, event, exc, insert
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs and use psycopg 3 for them."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def make_engine(url: str, *, statement_timeout: float | None = None, **kwargs: Any) -> Engine:
    """The engine of ``url``; ``statement_timeout`` stops any statement that runs longer
    (the web processes set it, so that no query holds a connection for minutes)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        # One connection per process: SQLite has one writer anyway, and requests that
        # queue on the pool wake as soon as it is free, where SQLite's busy handler
        # would sleep in steps of up to 100 ms (measured: p99 2.4 s -> 0.27 s).
        options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 60, **kwargs}
        engine = create_engine(url, connect_args=_sqlite_connect_args(statement_timeout), **options)
        event.listen(engine, "connect", _sqlite_pragmas)
        _savepoints_on_driver(engine.dialect)
        writer_lock = _WriterLock(engine.url.database)
        event.listen(engine, "begin", writer_lock.begin)
        event.listen(engine, "commit", writer_lock.commit)
        event.listen(engine, "rollback", writer_lock.rollback)
        for closing in ("close", "close_detached", "detach"):
            event.listen(engine, closing, _close_writer_lock)
        return engine
    # Plan every statement with its real values: psycopg prepares repeated statements,
    # and a generic plan for "dsn LIKE $1" ignores the index (measured 9 ms -> 500 ms).
    server_options = "-c plan_cache_mode=force_custom_plan"
    if statement_timeout:
        server_options += f" -c statement_timeout={int(statement_timeout * 1000)}"
    return create_engine(url, pool_pre_ping=True, connect_args={"options": server_options}, **kwargs)


def _savepoints_on_driver(dialect: Dialect) -> None:
    """SAVEPOINT, RELEASE and ROLLBACK TO straight to the driver: SQLAlchemy compiles each
    anew (a savepoint's name never repeats, so the statement cache never hits), which cost
    a fifth of a group-committed line call's CPU (http/line_writer.py, a savepoint a call)."""
    statements = {
        "do_savepoint": 'SAVEPOINT "{}"',
        "do_release_savepoint": 'RELEASE SAVEPOINT "{}"',
        "do_rollback_to_savepoint": 'ROLLBACK TO SAVEPOINT "{}"',
    }
    for method, sql in statements.items():
        vars(dialect)[method] = lambda connection, name, sql=sql: _execute_bare(connection, sql.format(name))


def _sqlite_connect_args(statement_timeout: float | None) -> dict[str, Any]:
    args: dict[str, Any] = {"timeout": 30, "check_same_thread": False}
    if statement_timeout:
        args["factory"] = type(
            "TimedConnection", (_TimedConnection,), {"statement_seconds": statement_timeout}
        )
    return args


class _TimedCursor(sqlite3.Cursor):
    """Gives each statement its deadline while it runs (see ``_TimedConnection``)."""

    def execute(self, sql: str, parameters: Any = (), /) -> _TimedCursor:
        with self._deadline():
            return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> _TimedCursor:
        with self._deadline():
            return super().executemany(sql, parameters)

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        connection: _TimedConnection = self.connection  # type: ignore[assignment]
        connection.deadline = time.monotonic() + connection.statement_seconds
        try:
            yield
        finally:
            connection.deadline = math.inf


class _TimedConnection(sqlite3.Connection):
    """SQLite has no statement timeout: a progress handler interrupts a statement past its
    deadline (checked every few thousand virtual-machine steps, a negligible cost).

    Done in the driver's own connection and cursor classes, not in SQLAlchemy's cursor
    events: those cost a request more than the check itself (measured: 3.5 % of a
    manufacture's instructions)."""

    statement_seconds = math.inf  # set per engine by a subclass (_sqlite_connect_args)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = math.inf
        self.set_progress_handler(self._past_deadline, 10_000)

    def _past_deadline(self) -> int:
        return int(self.deadline < time.monotonic())

    def cursor(self, factory: Any = _TimedCursor) -> Any:
        return super().cursor(factory)


def _execute_bare(connection: Connection, sql: str) -> None:
    """A statement without parameters or rows (BEGIN) on the driver's connection itself:
    SQLAlchemy's execution path costs more than the statement (errors are wrapped as
    SQLAlchemy's, as they would be there)."""
    dbapi_connection: Any = connection.connection.dbapi_connection
    try:
        dbapi_connection.execute(sql)
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(sql, (), error, sqlite3.Error) from error


def is_statement_timeout(error: Exception) -> bool:
    """Whether a database error is a statement stopped by the timeout (either database)."""
    text = str(getattr(error, "orig", error))
    return "interrupted" in text or "statement timeout" in text


def make_reader_engine(url: str, *, statement_timeout: float | None = None) -> Engine:
    """An engine for read-only requests.

    On SQLite its transactions begin DEFERRED and skip the writer lock: in WAL mode
    readers see a consistent snapshot and neither wait for the writer nor make it
    wait (a progress poll no longer stalls an upload). Elsewhere it is the usual engine.
    """
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return make_engine(url, statement_timeout=statement_timeout)
    engine = create_engine(url, connect_args=_sqlite_connect_args(statement_timeout), pool_size=8)
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "begin", lambda connection: _execute_bare(connection, "BEGIN"))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _close_writer_lock(_dbapi_connection: Any, record: Any = None) -> None:
    info = getattr(record, "info", None)
    lock = info.pop("writer_lock", None) if info is not None else None
    if lock is not None:
        lock.close()


class _WriterLock:
    """Hand SQLite's single write lock from process to process without busy sleeps.

    pysqlite's own transaction handling defers BEGIN; we emit BEGIN IMMEDIATE so a
    writer takes the lock at the start and never deadlocks upgrading a read lock.
    Waiting for it in SQLite's busy handler sleeps in steps of up to 100 ms (p99 of
    over a second under load); a blocking flock on a file beside the database wakes
    the next process as soon as the lock is released, and the kernel drops it if
    the holder dies.
    """

    def __init__(self, database: str | None) -> None:
        memory = not database or database == ":memory:"
        self.path = None if memory else f"{database}-writer.lock"

    def begin(self, connection: Any) -> None:
        lock = self._file(connection)
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _execute_bare(connection, "BEGIN IMMEDIATE")
        except BaseException:
            self.end(connection)
            raise

    def commit(self, connection: Any) -> None:
        self._finish(connection, "COMMIT")

    def rollback(self, connection: Any) -> None:
        self._finish(connection, "ROLLBACK")

    def _finish(self, connection: Any, sql: str) -> None:
        """End the transaction here, then hand the lock on. SQLAlchemy's commit event comes
        *before* its COMMIT: releasing the lock there let the next process's BEGIN IMMEDIATE
        meet a writer still committing, and wait in SQLite's busy handler (sleeps of 1 ms
        and up). The driver's own commit or rollback that follows finds nothing to do."""
        driver = connection.connection.dbapi_connection
        try:
            if driver.in_transaction:
                _execute_bare(connection, sql)
        except BaseException:
            if driver.in_transaction:  # a COMMIT refused (a deferred foreign key): nothing is kept
                with suppress(sqlite3.Error):
                    driver.execute("ROLLBACK")
            raise
        finally:
            self.end(connection)

    def end(self, connection: Any) -> None:
        lock = connection.info.get("writer_lock")
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_UN)

    def _file(self, connection: Any) -> IO[bytes] | None:
        if self.path is None:
            return None
        if "writer_lock" not in connection.info:
            connection.info["writer_lock"] = open(self.path, "a+b")  # noqa: SIM115 - lives with the connection
        lock: IO[bytes] = connection.info["writer_lock"]
        return lock


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- bulk writes on the hot paths ---------------------------------------------------------


def insert_many(connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` through ``execute_many``, one statement per set of keys (in order)."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    for names, group in groups.items():
        execute_many(
            connection,
            lambda names=names: insert(table).values({name: bindparam(name) for name in names}),  # type: ignore[misc]
            group,
            key=("insert", table.name, names),
        )


@dataclass(frozen=True)
class _DriverStatement:
    """A statement compiled once per dialect: its SQL and how to shape a row for it."""

    sql: str
    names: tuple[str, ...]
    positional: bool
    moments: tuple[int, ...]  # positions of UTCDateTime parameters
    fixed: Mapping[str, Any]  # the values a statement holds itself (``id == 1``)
    results: tuple[Callable[[Any], Any] | None, ...]  # how each result column is read
    # A statement whose SQL is only complete with its values (an IN list) runs through
    # SQLAlchemy's own execution, which renders the list each time.
    whole: Any = None

    @classmethod
    def of(cls, statement: Any, dialect: Dialect) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect)
        if any(bind.expanding for bind in compiled.binds.values()):
            return cls("", (), False, (), {}, (), whole=statement)
        # Only anonymous literals: a named parameter (``tenant_oem``) always comes with the row.
        fixed = {name: _bound(bind, dialect) for name, bind in compiled.binds.items() if bind.unique}
        columns = getattr(statement, "exported_columns", ())
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        if not compiled.positional:
            return cls(str(compiled), tuple(compiled.params), False, (), fixed, results)
        names = tuple(compiled.positiontup or ())
        moments = tuple(
            i for i, name in enumerate(names) if isinstance(compiled.binds[name].type, UTCDateTime)
        )
        return cls(str(compiled), names, True, moments, fixed, results)

    def parameters(self, row: Mapping[str, Any]) -> Any:
        """``row`` shaped for the driver: a dict, or a tuple in the statement's order."""
        if self.fixed:
            row = {**self.fixed, **row}
        if not self.positional:
            return {name: row[name] for name in self.names}
        values = [row[name] for name in self.names]
        for i in self.moments:
            if isinstance(values[i], datetime):
                values[i] = _stored_moment(values[i])
        return tuple(values)


_DRIVER_STATEMENTS: dict[tuple[str, Hashable], _DriverStatement] = {}


def execute_many(
    connection: Connection,
    build: Callable[[], Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Hashable,
) -> None:
    """The statement ``build()`` makes, once per row, handed straight to the driver's executemany.

    SQLAlchemy's per-row parameter processing costs more than SQLite's own work on the
    upload path (measured: ~15 % of a batch), and building and compiling the statement
    costs more than a one-row write on the API path, so the statement is compiled once
    per ``key`` and dialect, and the rows are shaped here: in the order of the compiled
    statement's parameters, UTC timestamps as ``UTCDateTime`` stores them on SQLite
    (drivers take enums of str, and psycopg aware datetimes, as they are).
    """
    if not rows:
        return
    statement = _driver_statement(connection.dialect, build, key)
    if statement.whole is not None:
        connection.execute(statement.whole, list(rows))
        return
    _on_driver(connection, statement, [statement.parameters(row) for row in rows], many=True)


def execute_one(
    connection: Connection, build: Callable[[], Any], row: Mapping[str, Any], *, key: Hashable
) -> Any:
    """One short statement as ``execute_many`` runs them (compiled once per ``key``, on the
    driver's own cursor); returns the first column of its first row (a RETURNING, a read),
    or None. For the hottest statements, whose SQLAlchemy execution costs more than SQLite
    takes to run them (measured: 18 us against 2 us for a one-row SELECT)."""
    statement = _driver_statement(connection.dialect, build, key)
    if statement.whole is not None:
        result = connection.execute(statement.whole, row)
        return result.scalar() if result.returns_rows else None
    cursor = _on_driver(connection, statement, statement.parameters(row), many=False)
    found = cursor.fetchone() if cursor.description else None
    return None if found is None else found[0]


def fetch_rows(
    connection: Connection, build: Callable[[], Any], row: Mapping[str, Any], *, key: Hashable
) -> list[tuple[Any, ...]]:
    """The rows of a short read run as ``execute_one`` runs it, each a tuple of its columns
    read as SQLAlchemy reads them (a UTC datetime from SQLite's text)."""
    statement = _driver_statement(connection.dialect, build, key)
    if statement.whole is not None:
        return [tuple(found) for found in connection.execute(statement.whole, row)]
    rows: list[tuple[Any, ...]] = _on_driver(
        connection, statement, statement.parameters(row), many=False
    ).fetchall()
    if not any(statement.results):
        return rows
    readers = statement.results
    return [
        tuple(v if read is None else read(v) for read, v in zip(readers, found, strict=True))
        for found in rows
    ]


def _bound(bind: Any, dialect: Dialect) -> Any:
    process = bind.type.dialect_impl(dialect).bind_processor(dialect)
    return bind.value if process is None else process(bind.value)


def _driver_statement(dialect: Dialect, build: Callable[[], Any], key: Hashable) -> _DriverStatement:
    cache_key = (dialect.name, key)
    statement = _DRIVER_STATEMENTS.get(cache_key)
    if statement is None:
        statement = _DRIVER_STATEMENTS.setdefault(cache_key, _DriverStatement.of(build(), dialect))
    return statement


def _on_driver(connection: Connection, statement: _DriverStatement, parameters: Any, *, many: bool) -> Any:
    """Run on the driver's cursor, in the connection's transaction; its errors are wrapped
    as SQLAlchemy wraps them (an IntegrityError stays an IntegrityError)."""
    dialect = connection.dialect
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(statement.sql, parameters)
        else:
            cursor.execute(statement.sql, parameters)
    except dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(statement.sql, parameters, error, dialect.loaded_dbapi.Error) from error
    return cursor


def _stored_moment(value: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite: naive UTC, with microseconds."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
