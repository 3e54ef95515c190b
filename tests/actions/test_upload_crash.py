"""SIGKILL of the service in the middle of a 20,000-line upload, then a restart:
the action completes and every line is applied exactly once."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.keycache import KeyCache
from tests.live import LiveServer
from tests.world import World

from devicefactory.actions.models import ActionLine
from devicefactory.db import session_scope
from devicefactory.devices import queries
from devicefactory.devices.models import Device, Job
from devicefactory.keys.crypto import SealedKeyPair

LINES = 20_000


def _reserved_fleet(factory: sessionmaker[Session], oem_id: str, pair: SealedKeyPair) -> list[str]:
    """20,000 reserved devices; the upload path never reads their keys, so they share one."""
    dsns = [f"AC000W{n:09d}" for n in range(1, LINES + 1)]
    now = datetime.now(UTC)
    with session_scope(factory) as session:
        queries.insert_devices(
            session,
            [
                {
                    "dsn": dsn,
                    "model": "AY001MTP1",
                    "status": "reserved",
                    "public_key": pair.public_pem,
                    "sealed_private_key": pair.sealed_private,
                    "reserved_by_oem_id": oem_id,
                    "reserved_at": now,
                    "datapoint_count": 0,
                    "last_job_failed": False,
                }
                for dsn in dsns
            ],
        )
    return dsns


@pytest.mark.slow
def test_sigkill_mid_upload_then_restart_applies_every_line_once(
    world: World,
    key_cache: KeyCache,
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
) -> None:
    dsns = _reserved_fleet(session_factory, world.oem_ids["modules"], key_cache.ensure(1)[0])
    content = "".join(
        f"2,1318462302,2016/11/24 10:34:23 UTC,label,0,AY001MTP1,{dsn},{n:012x},WD101a,p{n},sig-{n},\n"
        for n, dsn in enumerate(dsns, start=1)
    ).encode()
    server = LiveServer(
        database_url,
        master_key_file,
        tmp_path,
        background_workers=True,
        extra_env={"DEVICEFACTORY_ACTION_STALE_SECONDS": "2", "DEVICEFACTORY_ACTION_BATCH_SIZE": "200"},
    )
    server.start()
    try:
        response = httpx.post(
            f"{server.url}/devicefactory/v1/factory_actions",
            files={"file": ("line.log", content, "text/plain")},
            data={"type": "manufacture"},
            headers=world.headers("mm"),
            timeout=60,
        )
        assert response.status_code == 202, response.text
        action_id = response.json()["factory_action"]["id"]
        done_at_kill = _wait_for(server, world, action_id, lambda a: a["progress"]["lines_done"] >= 2000)
        server.kill()
        assert done_at_kill["status"] == "running"
        assert done_at_kill["progress"]["lines_done"] < LINES
        server.start()
        final = _wait_for(
            server, world, action_id, lambda a: a["status"] in ("success", "failure"), timeout=240
        )
    finally:
        server.stop()
    assert final["status"] == "success", final
    assert final["progress"]["applied"] == LINES
    with session_factory() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(ActionLine).where(ActionLine.action_id == action_id)
            )
            == LINES
        )
        manufactured = session.scalar(
            select(func.count()).select_from(Device).where(Device.status == "manufactured")
        )
        assert manufactured == LINES
        jobs_per_device = session.execute(
            select(Job.dsn, func.count()).where(Job.operation == "manufacture").group_by(Job.dsn)
        ).all()
        assert len(jobs_per_device) == LINES
        assert {count for _, count in jobs_per_device} == {1}
        sample = session.get(Device, dsns[12345])
        assert sample is not None
        assert (sample.mac, sample.hwsig) == (f"{12346:012x}", "sig-12346")


def _wait_for(
    server: LiveServer, world: World, action_id: int, ready: Callable[[dict], bool], timeout: float = 120
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{server.url}/devicefactory/v1/factory_actions/{action_id}",
            headers=world.headers("mm"),
            timeout=10,
        )
        body = response.json()["factory_action"]
        if ready(body):
            return body
        time.sleep(0.05)
    raise AssertionError(f"action {action_id} did not get there in {timeout}s")
