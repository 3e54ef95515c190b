"""A DSN prefix search uses an index on both databases (a million devices stay fast)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from tests.world import World

from devicefactory.accounts.policy import Actor, Role
from devicefactory.db import session_scope
from devicefactory.devices import queries
from devicefactory.devices.search import parse_search

FLEET = 20_000


def _fleet(factory: sessionmaker[Session], oem_ids: list[str]) -> None:
    now = datetime.now(UTC)
    with session_scope(factory) as session:
        queries.insert_devices(
            session,
            [
                {
                    "dsn": f"AC000W{n:09d}",
                    "model": "AY001MTP1",
                    "status": "reserved",
                    "public_key": "k",
                    "sealed_private_key": b"k",
                    "reserved_by_oem_id": oem_ids[n % len(oem_ids)],
                    "reserved_at": now,
                    "datapoint_count": 0,
                    "last_job_failed": False,
                }
                for n in range(1, FLEET + 1)
            ],
        )
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("ANALYZE devices"))
        else:
            session.execute(text("ANALYZE"))


def _plan(session: Session, actor: Actor, params: dict[str, str]) -> str:
    search = parse_search(params)
    statement = queries.search_statement(session, actor, search)
    compiled = statement.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if session.get_bind().dialect.name == "sqlite" else "EXPLAIN "
    rows = session.execute(text(prefix + str(compiled))).all()
    return "\n".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("who", ["platform", "module maker"])
def test_prefix_search_uses_an_index(world: World, session_factory: sessionmaker[Session], who: str) -> None:
    oem_ids = [world.oem_ids["modules"], world.oem_ids["modules2"]]
    _fleet(session_factory, oem_ids)
    actor = (
        Actor(1, "a@example.com", Role.AYLA_ADMIN, None)
        if who == "platform"
        else Actor(2, "m@example.com", Role.MODULE_MANUFACTURER, oem_ids[0], module_manufacturer=True)
    )
    with session_factory() as session:
        plan = _plan(session, actor, {"dsn": "AC000W00001234*", "limit": "50"})
        found = queries.search_devices(session, actor, parse_search({"dsn": "AC000W00001234*"}))
    assert found, "the search finds the devices it should"
    assert all(device.dsn.startswith("AC000W00001234") for device in found)
    if session_factory.kw["bind"].dialect.name == "sqlite":
        assert "SCAN devices" not in plan.replace("SCAN devices USING", "")  # no full table scan
        assert "USING" in plan
        assert "INDEX" in plan
    else:
        assert "Seq Scan on devices" not in plan
        assert "Index" in plan
