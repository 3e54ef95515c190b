"""Several runners share the queue: each action is worked once, each line applied once;
an action whose runner died is taken over."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import HEAD, action, log_line, reserve, upload
from tests.world import World

from devicefactory.actions.runner import ActionRunner
from devicefactory.config import Settings
from devicefactory.db import session_scope
from devicefactory.storage import delete_files
from devicefactory.tables.actions import ActionLine, FactoryAction
from devicefactory.tables.devices import Job


def test_two_runners_share_the_work(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session], settings: Settings
) -> None:
    pool(12)
    dsns = reserve(world, "mm", "AY001MTP1", 12)
    ids = []
    for part in range(4):
        lines = [
            f"{HEAD},label,0,AY001MTP1,{dsn},{0xA0000 + n:012x},m,s,sig-{n},"
            for n, dsn in enumerate(dsns[part * 3 : part * 3 + 3], start=part * 3)
        ]
        ids.append(upload(world, "mm", "\n".join(lines).encode())["id"])
    runners = [
        ActionRunner(session_factory, settings.model_copy(update={"action_batch_size": 1})) for _ in range(2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(stop,)) for r in runners]
    for thread in threads:
        thread.start()
    try:
        _wait(lambda: all(action(world, "mm", i)["factory_action"]["status"] == "success" for i in ids))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(ActionLine)) == 12
        per_device = dict(
            session.execute(
                select(Job.dsn, func.count()).where(Job.operation == "manufacture").group_by(Job.dsn)
            ).all()
        )
    assert per_device == dict.fromkeys(dsns, 1)


def test_an_action_whose_runner_died_is_taken_over(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session], settings: Settings
) -> None:
    pool(2)
    dsns = reserve(world, "mm", "AY001MTP1", 2)
    content = "\n".join(
        f"{HEAD},label,0,AY001MTP1,{d},{0xB0000 + i:012x},m,s,sig-b{i}," for i, d in enumerate(dsns)
    )
    action_id = upload(world, "mm", content.encode())["id"]
    runner = ActionRunner(session_factory, settings)
    claimed = runner._claim()
    assert claimed == action_id
    # This runner "dies" here. Another one only takes over once the claim is stale.
    other = ActionRunner(session_factory, settings)
    assert other.run_once() is False
    with session_factory.begin() as session:
        stored = session.get(FactoryAction, action_id)
        assert stored is not None
        assert stored.heartbeat_at is not None
        stored.heartbeat_at -= timedelta(seconds=settings.action_stale_seconds + 1)
    assert other.run_once() is True
    assert action(world, "mm", action_id)["factory_action"]["status"] == "success"


def _wait(ready: Callable[[], bool], timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_upload_whose_file_is_gone_fails_alone(
    world: World, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """An action whose stored file is gone (deleted by hand, say) fails with a reason and
    the runner keeps working the queue."""
    lost = upload(world, "mm", [log_line("AC000W000000001", "aa0000000009", "x9")])
    kept = upload(world, "mm", [log_line("AC000W000000002", "aa0000000008", "x8", status="pass")])
    with session_scope(session_factory) as session:
        stored = session.get(FactoryAction, lost["id"])
        assert stored is not None
        assert stored.file_id
        delete_files(session, [stored.file_id])
    runner = ActionRunner(session_factory, settings)
    while runner.run_once():
        pass
    failed = action(world, "mm", lost["id"])["factory_action"]
    assert failed["status"] == "failure"
    assert failed["message"] == "the uploaded file is no longer stored; upload it again"
    assert action(world, "mm", kept["id"])["factory_action"]["status"] == "success"
