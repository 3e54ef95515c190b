"""Uploads are kept in the database, in chunks, until their retention ends (SPEC §11, §12)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from tests.api import ACTIONS, action, file_text, log_line, upload
from tests.conftest import reset_schema
from tests.world import World

from devicefactory.actions.service import sweep_stored_files
from devicefactory.db import session_scope, utcnow
from devicefactory.migrate import alembic_config, upgrade_database
from devicefactory.storage import CHUNK, FileStore, StoredFile, StoredFileChunk
from devicefactory.tables.actions import FactoryAction


def test_a_large_upload_is_stored_in_chunks_and_worked_whole(
    world: World, session_factory: sessionmaker[Session], run_actions: Callable[[], int]
) -> None:
    lines = [log_line(f"AC000W8{n:08d}", f"{n:012x}", f"h{n}") for n in range(40_000)]
    content = ("\n".join(lines) + "\n").encode()
    assert len(content) > 2 * CHUNK
    created = upload(world, "mm", content, validate=True)
    with session_factory() as session:
        stored = session.get(FactoryAction, created["id"])
        assert stored is not None
        assert stored.file_id is not None
        chunks = session.scalar(
            select(func.count()).select_from(StoredFileChunk).where(StoredFileChunk.file_id == stored.file_id)
        )
        size = session.get(StoredFile, stored.file_id)
    assert chunks == -(-len(content) // CHUNK)
    assert size is not None
    assert (size.size, size.complete) == (len(content), True)
    with FileStore(session_factory).open(stored.file_id) as stream:
        assert stream.read() == content
    assert run_actions() == 1
    progress = action(world, "mm", created["id"])["factory_action"]["progress"]
    assert (progress["lines_done"], progress["invalid"]) == (40_000, 40_000)


def test_uploads_past_retention_and_files_no_action_took_are_deleted(
    world: World, session_factory: sessionmaker[Session], run_actions: Callable[[], int]
) -> None:
    old = upload(world, "mm", [log_line("AC000W800000001", "aa0000000001", "h1")])["id"]
    recent = upload(world, "mm", [log_line("AC000W800000002", "aa0000000002", "h2")])["id"]
    run_actions()
    store = FileStore(session_factory)
    orphan = store.save(io.BytesIO(b"a request that died before its action was made\n"))
    now = utcnow()
    with session_scope(session_factory) as session:
        session.execute(
            text("UPDATE factory_actions SET finished_at = :t WHERE id = :id"),
            {"t": now - timedelta(days=91), "id": old},
        )
        session.execute(
            text("UPDATE stored_files SET created_at = :t WHERE id = :id"),
            {"t": now - timedelta(hours=2), "id": orphan},
        )
    with session_scope(session_factory) as session:
        assert sweep_stored_files(session, now=now, retention=timedelta(days=90)) == 2
    with session_factory() as session:
        kept = {a.id: a.file_id for a in session.scalars(select(FactoryAction))}
        files = set(session.scalars(select(StoredFile.id)))
    assert kept[old] is None
    assert kept[recent] in files
    assert orphan not in files
    # The old action's outcomes and files stay.
    assert "AC000W800000001" in file_text(world, "mm", old, "log")
    assert world.client.get(f"{ACTIONS}/{old}/files/failed", headers=world.headers("mm")).status_code == 200


def test_the_upgrade_moves_pending_uploads_into_the_database(engine: Engine, tmp_path: Path) -> None:
    reset_schema(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0009")
    here = tmp_path / "here.upload"
    here.write_bytes(b"2,1,2016/11/24 10:34:23 UTC,label,0,AY001MTP1,AC000W000000001,aa,m,s,h,\n")
    rows = [
        (1, "pending", str(here)),
        (2, "running", str(tmp_path / "elsewhere.upload")),
        (3, "success", str(tmp_path / "long-gone.upload")),
    ]
    with engine.begin() as connection:
        for action_id, status, path in rows:
            connection.execute(
                text(
                    "INSERT INTO factory_actions (id, type, status, count, created_by, created_at, "
                    "validate_only, file_path, lines_total, lines_done, applied, identical, conflict, "
                    "invalid, skipped) VALUES (:id, 'manufacture', :status, 0, 'x@example.com', :now, "
                    "false, :path, 1, 0, 0, 0, 0, 0, 0)"
                ),
                {"id": action_id, "status": status, "path": path, "now": utcnow()},
            )
    upgrade_database(engine)
    with engine.connect() as connection:
        found = {
            row.id: (row.status, row.file_id, row.message)
            for row in connection.execute(text("SELECT id, status, file_id, message FROM factory_actions"))
        }
        stored = connection.execute(text("SELECT data FROM stored_file_chunks")).scalars().all()
    assert found[1][0] == "pending"
    assert found[1][1] is not None
    assert stored == [here.read_bytes()]
    assert found[2][0] == "failure"
    assert "upload it again" in found[2][2]
    assert found[3] == ("success", None, None)
    reset_schema(engine)
    upgrade_database(engine)
