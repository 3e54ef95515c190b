"""Master key rotation (SPEC §12): every private key is re-sealed under the new key, in
resumable batches, while the service runs; afterwards the new key alone opens them."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import DEVICES, reservation
from tests.conftest import FrozenClock
from tests.keycache import KeyCache
from tests.live import LiveServer
from tests.world import World

from devicefactory.keys import master
from devicefactory.keys.crypto import (
    KeyDecryptionError,
    Keyring,
    MasterKey,
    SealedKeyPair,
    encrypt_verify_token,
)
from devicefactory.keys.master import KeyringSource, rotate
from devicefactory.tables.devices import Device
from devicefactory.tables.keys import MasterKeyRotation, PoolKey

Pool = Callable[[int], None]


@pytest.fixture
def no_settling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(master, "SETTLE_SECONDS", 0)


def _sealed(factory: sessionmaker[Session]) -> list[SealedKeyPair]:
    """Every sealed private key in the database: the pool's and the devices'."""
    with factory() as session:
        rows = [
            *session.execute(select(PoolKey.public_key, PoolKey.sealed_private_key, PoolKey.master_key_id))
        ]
        rows += [*session.execute(select(Device.public_key, Device.sealed_private_key, Device.master_key_id))]
    return [SealedKeyPair(*row) for row in rows]


def _opens(keyring: Keyring, pair: SealedKeyPair) -> bool:
    try:
        keyring.unseal(pair)
    except KeyDecryptionError:
        return False
    return True


def _verify(client: Any, world: World, device: dict[str, str], now: int) -> int:
    message = f"{device['dsn']}:{now}".encode()
    token = base64.b64encode(encrypt_verify_token(device["public_key"], message)).decode()
    url = f"{DEVICES}/{device['dsn']}/verify"
    status: int = client.post(url, json={"token": token}, headers=world.headers("mm")).status_code
    return status


def test_rotation_reseals_every_key_and_only_the_new_key_opens_them(
    world: World,
    pool: Pool,
    session_factory: sessionmaker[Session],
    master_key_file: Path,
    tmp_path: Path,
    clock: FrozenClock,
    no_settling: None,
) -> None:
    pool(12)
    before = reservation(world, "mm", count=5).devices
    old = MasterKey.load_or_create(master_key_file)
    new = MasterKey.load_or_create(tmp_path / "new.key")
    assert os.stat(tmp_path / "new.key").st_mode & 0o777 == 0o600
    seen: list[tuple[str, int, int]] = []
    assert rotate(session_factory, old, new, lambda *step: seen.append(step)) == 12
    assert seen[-1][2] == 0
    pairs = _sealed(session_factory)
    assert len(pairs) == 12
    assert {pair.key_id for pair in pairs} == {new.key_id}
    assert all(_opens(Keyring(new), pair) for pair in pairs)
    assert not any(_opens(Keyring(old), pair) for pair in pairs)
    with session_factory() as session:
        finished = session.get(MasterKeyRotation, new.key_id)
        assert finished is not None
        assert finished.finished_at is not None
        assert finished.wrapped_key is None  # the new key rests nowhere but its file
    # The service restarted with the new key verifies devices reserved before the rotation.
    app = world.client.app
    app.state.keyring_source = KeyringSource(new, session_factory)  # type: ignore[attr-defined]
    assert _verify(world.client, world, before[0], int(clock.now.timestamp())) == 200
    # A process still on the old key cannot open them (and must not seal new ones).
    app.state.keyring_source = KeyringSource(old, session_factory)  # type: ignore[attr-defined]
    clock.advance(seconds=1)
    assert _verify(world.client, world, before[1], int(clock.now.timestamp())) == 503
    assert not KeyringSource(old, session_factory).may_seal()
    assert KeyringSource(new, session_factory).may_seal()


def test_a_running_process_learns_the_new_key_during_a_rotation(
    world: World, pool: Pool, session_factory: sessionmaker[Session], master_key_file: Path, tmp_path: Path
) -> None:
    pool(2)
    old = MasterKey.load_or_create(master_key_file)
    new = MasterKey.load_or_create(tmp_path / "new.key")
    source = KeyringSource(old, session_factory)
    assert source.current().primary.key_id == old.key_id
    master._start(session_factory, old, new)  # the rotation has begun, nothing re-sealed yet
    source._checked = -master.REFRESH_SECONDS  # its next look
    keyring = source.current()
    assert keyring.primary.key_id == new.key_id  # seals with the new key
    assert keyring.configured.key_id == old.key_id  # still opens the old ones
    assert all(_opens(keyring, pair) for pair in _sealed(session_factory))


def test_another_rotation_waits_for_the_unfinished_one(
    session_factory: sessionmaker[Session], master_key_file: Path, tmp_path: Path
) -> None:
    old = MasterKey.load_or_create(master_key_file)
    first, second = (MasterKey.load_or_create(tmp_path / name) for name in ("a.key", "b.key"))
    master._start(session_factory, old, first)
    with pytest.raises(ValueError, match="is not finished"):
        rotate(session_factory, old, second)
    with pytest.raises(ValueError, match="is the current one"):
        rotate(session_factory, old, old)


@pytest.mark.slow
def test_a_rotation_killed_midway_resumes_and_the_service_keeps_verifying(
    world: World,
    key_cache: KeyCache,
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
) -> None:
    """kill -9 of `master-key rotate` in the middle, then again to the end, while a server
    runs on the old key: it verifies throughout, and after a restart on the new key."""
    key_cache.fill_pool(session_factory, 40)
    server = LiveServer(database_url, master_key_file, tmp_path)
    server.start()
    try:
        headers = {"Authorization": f"auth_token {world.token('mm')}"}
        reserved = httpx.post(
            f"{server.url}{DEVICES}/reserve", json={"model": "AY001MTP1", "count": 30}, headers=headers
        ).json()
        devices = [item["device"] for item in reserved]
        with session_factory() as session:  # more rows, so that a kill lands mid-way
            extra = session.scalar(select(func.count()).select_from(PoolKey))
        assert extra == 10
        new_file = tmp_path / "new.key"
        env = {**server.env, "DEVICEFACTORY_ROTATION_BATCH": "1"}
        rotating = subprocess.Popen(
            [sys.executable, "-m", "devicefactory", "master-key", "rotate", "--new-key-file", str(new_file)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert rotating.stdout is not None
        for line in rotating.stdout:
            if b"re-sealed" in line and b"device keys: 5 " in line:
                break
        rotating.kill()
        rotating.wait()
        rotating.stdout.close()
        new = MasterKey.load_or_create(new_file)
        pairs = _sealed(session_factory)
        resealed = sum(pair.key_id == new.key_id for pair in pairs)
        assert 0 < resealed < len(pairs)  # killed in the middle
        # Mid-rotation, the running server (old key) still verifies every device.
        for device in (devices[0], devices[-1]):
            assert _verify_live(server, headers, device) == 200
        finished = subprocess.run(
            [sys.executable, "-m", "devicefactory", "master-key", "rotate", "--new-key-file", str(new_file)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert f"DEVICEFACTORY_MASTER_KEY_FILE={new_file}" in finished.stdout
        assert {pair.key_id for pair in _sealed(session_factory)} == {new.key_id}
        assert _verify_live(server, headers, devices[1]) == 200
        server.stop()
        server.env["DEVICEFACTORY_MASTER_KEY_FILE"] = str(new_file)
        server.start()
        assert _verify_live(server, headers, devices[2]) == 200
    finally:
        server.stop()
    old = MasterKey.load_or_create(master_key_file)
    assert not any(_opens(Keyring(old), pair) for pair in _sealed(session_factory))


@pytest.mark.slow
def test_web_processes_idle_during_a_rotation_verify_after_it(
    world: World,
    key_cache: KeyCache,
    session_factory: sessionmaker[Session],
    database_url: str,
    master_key_file: Path,
    tmp_path: Path,
) -> None:
    """Two web processes in directories of their own, each with its own copy of the master
    key file, take no request while `master-key rotate` runs to its end (the database then
    no longer holds the new key in any form); both verify devices reserved before it."""
    key_cache.fill_pool(session_factory, 4)
    servers = []
    for name in ("web-a", "web-b"):
        home = tmp_path / name
        home.mkdir()
        key_file = home / "master.key"
        key_file.write_bytes(master_key_file.read_bytes())
        key_file.chmod(0o600)
        servers.append(LiveServer(database_url, key_file, home))
    try:
        for server in servers:
            server.start()
        headers = {"Authorization": f"auth_token {world.token('mm')}"}
        reserved = httpx.post(
            f"{servers[0].url}{DEVICES}/reserve", json={"model": "AY001MTP1", "count": 3}, headers=headers
        )
        assert reserved.status_code == 200, reserved.text
        devices = [item["device"] for item in reserved.json()]
        rotator = tmp_path / "operator"  # the operator's host: a copy of the key of its own
        rotator.mkdir()
        (rotator / "master.key").write_bytes(master_key_file.read_bytes())
        (rotator / "master.key").chmod(0o600)
        new_file = rotator / "new.key"
        finished = subprocess.run(
            [sys.executable, "-m", "devicefactory", "master-key", "rotate", "--new-key-file", str(new_file)],
            env={**servers[0].env, "DEVICEFACTORY_MASTER_KEY_FILE": str(rotator / "master.key")},
            cwd=rotator,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert finished.returncode == 0, finished.stdout + finished.stderr
        new = MasterKey.load_or_create(new_file)
        assert {pair.key_id for pair in _sealed(session_factory)} == {new.key_id}
        with session_factory() as session:  # finished: the new key is nowhere in the database
            assert session.scalars(select(MasterKeyRotation.wrapped_key)).all() == [None]
        assert _verify_live(servers[0], headers, devices[0]) == 200
        assert _verify_live(servers[1], headers, devices[1]) == 200  # never used its keyring before
    finally:
        for server in servers:
            server.stop()


def _verify_live(server: LiveServer, headers: dict[str, str], device: dict[str, str]) -> int:
    time.sleep(1.01)  # each token its own second: a token is accepted once
    message = f"{device['dsn']}:{int(time.time())}".encode()
    token = base64.b64encode(encrypt_verify_token(device["public_key"], message)).decode()
    answer = httpx.post(
        f"{server.url}{DEVICES}/{device['dsn']}/verify", json={"token": token}, headers=headers, timeout=30
    )
    return answer.status_code
