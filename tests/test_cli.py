"""The ``devicefactory`` command, run as a real process against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.tables.accounts import Oem, User
from tests.world import factory_certificate


def run_cli(database_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEVICEFACTORY_DATABASE_URL": database_url,
        "DEVICEFACTORY_MASTER_KEY_FILE": str(tmp_path / "master.key"),
    }
    return subprocess.run(
        [sys.executable, "-m", "devicefactory", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_admin_commands_create_oem_user_and_model(
    engine: Engine, database_url: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    cert = tmp_path / "factory.pem"
    cert.write_bytes(factory_certificate()[0])
    made = run_cli(
        database_url,
        tmp_path,
        "admin",
        "create-oem",
        "--name",
        "Line One",
        "--module-manufacturer",
        "--cert",
        str(cert),
    )
    assert made.returncode == 0, made.stderr
    oem_id = made.stdout.strip().splitlines()[-1]
    assert len(oem_id) == 8
    assert made.stdout.strip() == oem_id  # alone on its line, nothing else on stdout

    user = run_cli(
        database_url,
        tmp_path,
        "admin",
        "create-user",
        "--email",
        "Op@Example.com",
        "--password",
        "long enough",
        "--role",
        "OEM::ModuleManufacturer",
        "--oem",
        oem_id,
    )
    assert user.returncode == 0, user.stderr
    model = run_cli(database_url, tmp_path, "admin", "create-model", "--name", "AY009", "--kind", "black_box")
    assert model.returncode == 0, model.stderr

    with session_factory() as session:
        oem = session.get(Oem, oem_id)
        assert oem is not None
        assert oem.module_manufacturer
        assert oem.factory_certificate
        assert session.scalars(select(User.oem_id).where(User.email == "op@example.com")).one() == oem_id


def test_taken_email_exits_non_zero_and_changes_nothing(
    database_url: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    args = [
        "admin",
        "create-user",
        "--email",
        "root@example.com",
        "--password",
        "long enough",
        "--role",
        "Ayla::Admin",
    ]
    assert run_cli(database_url, tmp_path, *args).returncode == 0
    with session_factory() as session:
        before = session.scalars(select(User)).one()
    again = run_cli(database_url, tmp_path, *args[:2], "--email", "ROOT@example.com", *args[4:])
    assert again.returncode != 0
    assert "already exists" in again.stderr
    with session_factory() as session:
        after = session.scalars(select(User)).one()
        assert session.scalar(select(func.count()).select_from(User)) == 1
    assert (after.id, after.password_hash) == (before.id, before.password_hash)


def test_bad_oem_certificate_exits_non_zero(
    database_url: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    result = run_cli(database_url, tmp_path, "admin", "create-oem", "--name", "Bad", "--cert", str(bad))
    assert result.returncode != 0
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Oem)) == 0


def test_demo_loads_once_and_prints_a_working_sign_in(
    database_url: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    first = run_cli(database_url, tmp_path, "demo", "--dir", str(tmp_path / "demo"))
    assert first.returncode == 0, first.stderr
    assert "curl -s -X POST http://127.0.0.1:8000/users/sign_in.json" in first.stdout
    assert (tmp_path / "demo" / "modules-factory.key.pem").stat().st_mode & 0o777 == 0o600
    with session_factory() as session:
        users = session.scalar(select(func.count()).select_from(User))
        roles = set(session.scalars(select(User.role)))
    assert roles == {
        "Ayla::Admin",
        "OEM::ModuleManufacturer",
        "OEM::ModuleOEMManufacturer",
        "OEM::SoftwareOEMManufacturer",
        "OEM::Admin",
    }
    second = run_cli(database_url, tmp_path, "demo", "--dir", str(tmp_path / "demo"))
    assert second.returncode == 0
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == users
