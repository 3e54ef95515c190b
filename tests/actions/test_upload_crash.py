"""SIGKILL of the service in the middle of a 20,000-line upload, then a restart:
the action completes and every line is applied exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.keycache import KeyCache
from tests.live import LiveServer, reserved_fleet, upload_log, wait_for_action
from tests.world import World

from devicefactory.tables.actions import ActionLine
from devicefactory.tables.devices import Device, Job

LINES = 20_000


@pytest.mark.slow
def test_sigkill_mid_upload_then_restart_applies_every_line_once(
    world: World,
    key_cache: KeyCache,
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
) -> None:
    dsns = reserved_fleet(session_factory, world.oem_ids["modules"], key_cache.ensure(1)[0], LINES)
    server = LiveServer(
        database_url,
        master_key_file,
        tmp_path,
        background_workers=True,
        extra_env={"DEVICEFACTORY_ACTION_STALE_SECONDS": "2", "DEVICEFACTORY_ACTION_BATCH_SIZE": "200"},
    )
    server.start()
    try:
        action_id = upload_log(server, world, dsns)
        done_at_kill = wait_for_action(
            server, world, action_id, lambda a: a["progress"]["lines_done"] >= 2000
        )
        server.kill()
        assert done_at_kill["status"] == "running"
        assert done_at_kill["progress"]["lines_done"] < LINES
        server.start()
        final = wait_for_action(
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
