"""Group commit of the line's writes on SQLite (http/line_writer.py).

Calls queued while the writer is busy run as one transaction, each in a savepoint of its
own; each answer comes after that transaction's commit; a refusal keeps only its own
record; a commit that fails fails every call of its batch and keeps nothing of it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.engine import Engine
from tests.api import manufacture_body, reserve
from tests.world import World

from devicefactory.devices import factory_data
from devicefactory.errors import WriteLost
from devicefactory.http.line_writer import MAX_BATCH, LineWriter
from devicefactory.tables.devices import Device

Pool = Callable[[int], None]


@pytest.fixture
def writer(app: FastAPI, engine: Engine) -> LineWriter:
    if engine.dialect.name != "sqlite":
        assert app.state.line_writer is None  # PostgreSQL's writers run side by side
        pytest.skip("group commit is for a database with one writer (SQLite)")
    line_writer: LineWriter = app.state.line_writer
    return line_writer


class Gate:
    """Holds the first manufacture inside the writer until the other calls are queued behind
    it (the queue has stopped growing)."""

    def __init__(self, writer: LineWriter) -> None:
        self.writer = writer
        self.first = True

    def wrap(self, work: Callable[..., Any]) -> Callable[..., Any]:
        def gated(*args: Any, **kwargs: Any) -> Any:
            if self.first:
                self.first = False
                seen, steady_since, deadline = -1, time.monotonic(), time.monotonic() + 10
                while time.monotonic() < deadline:
                    queued = self.writer._calls.qsize()
                    if queued != seen:
                        seen, steady_since = queued, time.monotonic()
                    elif time.monotonic() - steady_since > 0.3:
                        break
                    time.sleep(0.01)
            return work(*args, **kwargs)

        return gated


def _committed_status(engine: Engine, dsn: str) -> str | None:
    """The device's status as another connection sees it: committed data only."""
    with engine.connect() as connection:
        status = connection.execute(select(Device.status).where(Device.dsn == dsn)).scalar_one()
        return str(status.value if hasattr(status, "value") else status)


def _manufacture_all(
    app: FastAPI,
    headers: dict[str, str],
    calls: list[tuple[str, dict[str, str]]],
    engine: Engine,
    *,
    in_one_batch: bool = False,
) -> list[tuple[httpx.Response, str | None]]:
    """Send every call at once; with each answer, what another connection saw on its arrival.
    ``in_one_batch``: the writer is kept busy until all of them are queued."""

    async def send_all() -> list[tuple[httpx.Response, str | None]]:
        if in_one_batch:
            held = await _HeldWriter(app.state.line_writer, len(calls)).hold()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://factory") as client:

            async def one(dsn: str, body: dict[str, str]) -> tuple[httpx.Response, str | None]:
                answer = await client.post(
                    f"/devicefactory/v1/devices/{dsn}/manufacture", json=body, headers=headers
                )
                return answer, _committed_status(engine, dsn)

            answers = list(await asyncio.gather(*(one(dsn, body) for dsn, body in calls)))
        if in_one_batch:
            await held
        return answers

    with ThreadPoolExecutor(1) as own_thread:  # a loop of its own, whatever the test runner runs
        return own_thread.submit(asyncio.run, send_all()).result()


class _HeldWriter:
    """A call of no work whose preparation, in the writer's thread, waits for the others to
    queue: they then run as one batch."""

    def __init__(self, writer: LineWriter, until_queued: int) -> None:
        self.writer, self.until_queued = writer, until_queued
        self.holding = threading.Event()

    async def hold(self) -> asyncio.Future[Any]:
        from sqlalchemy.orm import Session

        from devicefactory.http.line_writer import LineCall

        call = LineCall(
            Session(join_transaction_mode="create_savepoint"), prepare=self._wait, work=lambda _: None
        )
        held = asyncio.ensure_future(self.writer.run(call))
        while not self.holding.is_set():  # taken alone, before the others are sent
            await asyncio.sleep(0.005)
        return held

    def _wait(self) -> None:
        self.holding.set()
        deadline = time.monotonic() + 10
        while self.writer._calls.qsize() < self.until_queued and time.monotonic() < deadline:
            time.sleep(0.005)


@pytest.fixture
def gated(writer: LineWriter, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    def gate() -> None:
        monkeypatch.setattr(
            factory_data, "manufacture_device", Gate(writer).wrap(factory_data.manufacture_device)
        )

    return gate


def test_calls_queued_behind_a_busy_writer_commit_together_and_answer_after_it(
    world: World, pool: Pool, app: FastAPI, engine: Engine, writer: LineWriter, gated: Callable[[], None]
) -> None:
    count = 1 + MAX_BATCH
    pool(count)
    dsns = reserve(world, "mm", count=count)
    gated()
    before = writer.transactions

    answers = _manufacture_all(
        app, world.headers("mm"), [(d, manufacture_body(n)) for n, d in enumerate(dsns)], engine
    )

    assert [answer.status_code for answer, _ in answers] == [200] * count, [a.text for a, _ in answers]
    assert [seen for _, seen in answers] == ["manufactured"] * count  # committed when answered
    assert writer.transactions - before == 2  # the first batch, and the calls queued behind it


def test_a_refused_call_in_a_batch_keeps_its_own_record_and_nothing_else(
    world: World, pool: Pool, app: FastAPI, engine: Engine, writer: LineWriter, gated: Callable[[], None]
) -> None:
    pool(4)
    dsns = reserve(world, "mm", count=4)
    gated()
    same_mac = manufacture_body(7)
    calls = [
        (dsns[0], manufacture_body(0)),
        (dsns[1], same_mac),
        (dsns[2], {**manufacture_body(8), "mac": same_mac["mac"]}),
        (dsns[3], manufacture_body(9)),
    ]

    answers = _manufacture_all(app, world.headers("mm"), calls, engine)

    statuses = [answer.status_code for answer, _ in answers]
    assert statuses[0] == statuses[3] == 200, [a.text for a, _ in answers]
    assert sorted(statuses[1:3]) == [200, 422], [a.text for a, _ in answers]
    refused = 1 if statuses[1] == 422 else 2
    assert "mac" in answers[refused][0].text
    assert [seen for _, seen in answers] == ["reserved" if n == refused else "manufactured" for n in range(4)]
    history = world.client.get(f"/devicefactory/v1/devices/{dsns[refused]}/jobs", headers=world.headers("mm"))
    assert history.status_code == 200, history.text
    last = history.json()["jobs"][-1]
    assert (last["operation"], last["result"]) == ("manufacture", "failure"), last  # its refusal was kept


def test_a_failed_commit_fails_every_call_of_its_batch_and_keeps_none(
    world: World,
    pool: Pool,
    app: FastAPI,
    engine: Engine,
    writer: LineWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The COMMIT itself fails (a deferred foreign key, broken by the second call of four in
    one batch): all four answer "try again", none is kept, and the writer goes on."""
    pool(4)
    dsns = reserve(world, "mm", count=4)
    entered: list[str] = []
    manufacture = factory_data.manufacture_device

    def breaking_the_second(session: Any, actor: Any, *, dsn: str, body: Any, now: Any) -> Any:
        entered.append(dsn)
        result = manufacture(session, actor, dsn=dsn, body=body, now=now)
        if len(entered) == 2:  # checked at COMMIT only
            connection = session.connection()
            connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
            connection.exec_driver_sql("UPDATE devices SET model = 'no-such-model' WHERE dsn = ?", (dsn,))
        return result

    monkeypatch.setattr(factory_data, "manufacture_device", breaking_the_second)
    calls = [(d, manufacture_body(n)) for n, d in enumerate(dsns)]
    answers = _manufacture_all(app, world.headers("mm"), calls, engine, in_one_batch=True)

    assert sorted(entered) == sorted(dsns)  # every call did its work, in one transaction
    for answer, seen in answers:
        assert (answer.status_code, seen) == (503, "reserved"), answer.text
        assert answer.json()["error"][0]["code"] == "AFS-503"
        assert answer.headers["retry-after"] == "1"  # nothing kept: send it again
    monkeypatch.setattr(factory_data, "manufacture_device", manufacture)
    again = _manufacture_all(app, world.headers("mm"), calls, engine)
    assert [(answer.status_code, seen) for answer, seen in again] == [(200, "manufactured")] * 4


def test_a_call_that_ends_the_transaction_fails_its_whole_batch(
    world: World,
    pool: Pool,
    app: FastAPI,
    engine: Engine,
    writer: LineWriter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite ends the whole transaction when a write is interrupted (or the disk is full),
    not just the statement: here the second call's commit-time flush. The calls before it
    in the batch are gone too, so none may answer "200": each answers "try again" (the
    interrupted one its own 503) and nothing of the batch is kept."""
    from sqlalchemy import event as orm_event

    from devicefactory.tables.devices import Counter

    pool(4)
    dsns = reserve(world, "mm", count=4)
    entered: list[str] = []
    drivers: list[Any] = []
    manufacture = factory_data.manufacture_device

    def interrupting_the_second(session: Any, actor: Any, *, dsn: str, body: Any, now: Any) -> Any:
        entered.append(dsn)
        result = manufacture(session, actor, dsn=dsn, body=body, now=now)
        if len(entered) == 2:
            session.add(Counter(name="interrupted-call", next_value=1))  # written at its commit
            driver = session.connection().connection.dbapi_connection
            drivers.append(driver)
            once = iter([1])

            def interrupt(*_: Any) -> None:
                driver.set_progress_handler(lambda: next(once, 0), 1)

            orm_event.listen(session, "before_flush", interrupt)
        return result

    monkeypatch.setattr(factory_data, "manufacture_device", interrupting_the_second)
    calls = [(d, manufacture_body(n)) for n, d in enumerate(dsns)]
    try:
        answers = _manufacture_all(app, world.headers("mm"), calls, engine, in_one_batch=True)
    finally:
        for driver in drivers:
            driver.set_progress_handler(None, 1)

    assert len(entered) == 2  # the batch stopped where its transaction was lost
    for answer, seen in answers:
        assert (answer.status_code, seen) == (503, "reserved"), answer.text
    with engine.connect() as connection:
        assert connection.execute(select(Counter).where(Counter.name == "interrupted-call")).first() is None
    monkeypatch.setattr(factory_data, "manufacture_device", manufacture)
    again = _manufacture_all(app, world.headers("mm"), calls, engine)
    assert [(answer.status_code, seen) for answer, seen in again] == [(200, "manufactured")] * 4


@pytest.fixture
def own_engine(tmp_path: Any) -> Iterator[Engine]:
    from devicefactory.db import make_engine

    own = make_engine(f"sqlite:///{tmp_path / 'writer.db'}")
    yield own
    own.dispose()


def test_after_its_thread_dies_the_writer_serves_the_next_call(
    own_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer thread ended by an error that is not a call's own (here SystemExit from a
    call's work) answers the calls of its batch (nothing kept: try again); the next call
    starts a new thread."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from devicefactory.http.line_writer import LineCall

    own = own_engine
    writer = LineWriter(own)
    deaths: list[type[BaseException]] = []
    monkeypatch.setattr(threading, "excepthook", lambda died: deaths.append(died.exc_type))

    def call(work: Callable[[Any], Any]) -> LineCall:
        return LineCall(Session(join_transaction_mode="create_savepoint"), prepare=lambda: None, work=work)

    def one_row(_: Any) -> int:
        return 1

    async def both() -> tuple[BaseException | None, int]:
        def stop(_: Any) -> int:
            raise SystemExit("bug")

        first = call(stop)
        try:
            await writer.run(first)
            died = None
        except BaseException as error:  # what the caller got is the point
            died = error
        return died, await writer.run(call(one_row))

    answers: list[tuple[BaseException | None, int]] = []
    loop_thread = threading.Thread(target=lambda: answers.append(asyncio.run(both())), daemon=True)
    loop_thread.start()
    loop_thread.join(timeout=30)
    assert answers, "the call after the writer thread's death was never answered"
    died, answer = answers[0]
    assert isinstance(died, WriteLost)
    assert answer == 1
    deadline = time.monotonic() + 10
    while not deaths and time.monotonic() < deadline:
        time.sleep(0.01)
    assert deaths == [SystemExit]  # the first thread did die of it
    with own.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1  # nothing left locked


def test_a_reserve_whose_commit_fails_is_not_counted_in_metrics(
    world: World, pool: Pool, writer: LineWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reserves metric counts what was kept: a reserve refused at COMMIT (a deferred
    foreign key broken after the service returned) answers 503 and leaves the counter alone."""
    from devicefactory.devices import service

    pool(2)
    reserve_devices = service.reserve_devices

    def breaking_at_commit(session: Any, actor: Any, **kwargs: Any) -> Any:
        reservation = reserve_devices(session, actor, **kwargs)
        connection = session.connection()
        connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        connection.exec_driver_sql("UPDATE devices SET model = 'no-such-model'")
        return reservation

    def counted() -> str:
        metrics = world.client.get("/metrics").text
        oem = world.oem_ids["modules"]
        return next(
            (
                line
                for line in metrics.splitlines()
                if line.startswith(f'devicefactory_reserves_total{{oem="{oem}"}}')
            ),
            "",
        )

    monkeypatch.setattr(service, "reserve_devices", breaking_at_commit)
    body = {"model": "AY001MTP1", "count": 1}
    refused = world.client.post("/devicefactory/v1/devices/reserve", json=body, headers=world.headers("mm"))
    assert refused.status_code == 503, refused.text
    assert counted() == ""
    monkeypatch.setattr(service, "reserve_devices", reserve_devices)
    kept = world.client.post("/devicefactory/v1/devices/reserve", json=body, headers=world.headers("mm"))
    assert kept.status_code == 200, kept.text
    assert counted().endswith(" 1.0")
