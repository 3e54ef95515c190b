"""Operations (SPEC §12): readiness, JSON logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.db import session_scope
from devicefactory.logs import JsonFormatter, RequestIdLogFilter
from devicefactory.migrate import head_revision
from tests.live import LiveServer
from tests.world import World


def test_readyz_wants_the_schema_at_head_and_the_pool_above_its_low_water_mark(
    world: World, pool: Callable[[int], None], session_factory: sessionmaker[Session]
) -> None:
    client = world.client
    settings = client.app.state.settings  # type: ignore[attr-defined]
    assert client.get("/readyz").json() == {"status": "ready"}  # target 0: no low-water mark
    settings.key_pool_target = 100  # low water: 10 keys
    try:
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json() == {
            "status": "not ready",
            "reasons": ["the key pool holds 0 keys, under its low-water mark of 10"],
        }
        assert client.get("/healthz").status_code == 200  # alive all the same
        pool(10)
        assert client.get("/readyz").status_code == 200
        with session_scope(session_factory) as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0001'"))
        try:
            behind = client.get("/readyz")
            assert behind.status_code == 503
            assert behind.json()["reasons"] == [
                f"the schema is at revision 0001, not {head_revision()}: run devicefactory db upgrade"
            ]
        finally:
            with session_scope(session_factory) as session:
                session.execute(text("UPDATE alembic_version SET version_num = :h"), {"h": head_revision()})
    finally:
        settings.key_pool_target = 0


def test_json_log_lines_carry_the_request_and_who_made_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdLogFilter())
    caplog.set_level(logging.INFO, logger="devicefactory.web")
    world.client.get("/devicefactory/v1/devices", headers={**world.headers("mm"), "X-Request-Id": "line-7.1"})
    record = next(r for r in caplog.records if r.getMessage().startswith("GET /devicefactory/v1/devices "))
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO"
    assert line["request_id"] == "line-7.1"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/devicefactory/v1/devices", 200)
    assert line["user"] == world.emails["mm"]
    assert line["oem"] == world.oem_ids["modules"]
    assert line["client"] == "testclient"
    assert isinstance(line["duration_ms"], float)
    assert line["time"].endswith("+00:00")


def test_a_server_writes_json_lines_when_asked(
    database_url: str, master_key_file: Path, tmp_path: Path, world: World
) -> None:
    server = LiveServer(
        database_url, master_key_file, tmp_path, extra_env={"DEVICEFACTORY_LOG_FORMAT": "json"}
    )
    server.start()
    try:
        token = world.token("mm")
        httpx.get(f"{server.url}/devicefactory/v1/devices", headers={"Authorization": f"auth_token {token}"})
    finally:
        server.stop()
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line]
    access = [line for line in lines if line.get("path") == "/devicefactory/v1/devices"]
    assert access
    assert access[0]["user"] == world.emails["mm"]
    assert access[0]["status"] == 200
    assert all({"time", "level", "logger", "message", "request_id"} <= line.keys() for line in lines)


def test_a_served_process_keeps_its_startup_objects_out_of_the_collector(tmp_path: Path) -> None:
    """The app a web process serves: what exists at start is frozen (no full collection
    walks it again) and the collector runs less often than Python's defaults."""
    import os
    import subprocess
    import sys

    code = (
        "import gc; from devicefactory.app import app_from_environment; app_from_environment(); "
        "print(gc.get_freeze_count(), *gc.get_threshold())"
    )
    env = {**os.environ, "DEVICEFACTORY_DATABASE_URL": f"sqlite:///{tmp_path / 'served.db'}"}
    env.pop("DEVICEFACTORY_SERVE_PID", None)
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    frozen, *thresholds = (int(word) for word in shown.stdout.split())
    assert frozen > 10_000
    assert thresholds == [7000, 10, 100]
