"""The master key of this process, and its rotation (SPEC §12).

Each process loads its configured key: a file (``DEVICEFACTORY_MASTER_KEY_FILE``, made
on first use, mode 0600) or, with the ``DEVICEFACTORY_MASTER_KEY_PKCS11_*`` settings, a
file that holds the key only wrapped by a key inside an HSM (keys.hsm).

``devicefactory master-key rotate --new-key-file F`` re-seals every private key under
F while the service runs. It first writes F, sealed with the current key, into
``master_key_rotations``: every running process reads it within ``REFRESH_SECONDS``,
then opens keys sealed with either and seals new ones with F. Rows are re-sealed in
batches (each a transaction, so a rotation killed at any point resumes where it was);
when none is left, the wrapped copy is deleted and F alone opens every key. Processes
are then restarted with ``DEVICEFACTORY_MASTER_KEY_FILE=F``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

from sqlalchemy import Table
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.config import Settings
from devicefactory.db import session_scope, utcnow
from devicefactory.keys import queries
from devicefactory.keys.crypto import Keyring, MasterKey, SealedKeyPair, unwrap_key, wrap_key
from devicefactory.tables.devices import Device
from devicefactory.tables.keys import MasterKeyRotation, PoolKey

log = logging.getLogger("devicefactory.keys")
REFRESH_SECONDS = 5.0
BATCH = 500
# After announcing the new key, and again once nothing is left, wait until every running
# process has looked for the rotation at least once more (each looks every REFRESH_SECONDS,
# idle or not; twice that, for a loaded host).
SETTLE_SECONDS = 2 * REFRESH_SECONDS + 1


def load_master_key(settings: Settings, path: Path | None = None) -> MasterKey:
    """The key of ``path`` (the configured file by default): plain, or wrapped by the HSM."""
    path = path or settings.master_key_file
    if settings.master_key_pkcs11_module:
        from devicefactory.keys.hsm import HsmWrap

        return HsmWrap.of(settings).load_or_create(path)
    return MasterKey.load_or_create(path)


class KeyringSource:
    """This process's keyring, kept up to date with a rotation in progress."""

    def __init__(self, configured: MasterKey, factory: sessionmaker[Session]) -> None:
        self.keyring = Keyring(configured)
        self.factory = factory
        self._checked = -REFRESH_SECONDS
        self._lock = threading.Lock()

    def current(self) -> Keyring:
        """The keyring, having looked for a rotation at most ``REFRESH_SECONDS`` ago."""
        if time.monotonic() - self._checked >= REFRESH_SECONDS:
            with self._lock:
                if time.monotonic() - self._checked >= REFRESH_SECONDS:
                    self._refresh()
        return self.keyring

    def _refresh(self) -> None:
        with self.factory() as session:
            rotation = queries.active_rotation(session)
        self._checked = time.monotonic()
        if rotation is None or rotation.wrapped_key is None or self.keyring.holds(rotation.new_key_id):
            return
        if not self.keyring.holds(rotation.old_key_id):
            log.error("a master key rotation runs from a key this process does not hold")
            return
        old = self._held(rotation.old_key_id)
        self.keyring.add(unwrap_key(old, rotation.wrapped_key, rotation.new_key_id))
        log.info("master key rotation: now sealing with key %s", rotation.new_key_id)

    def _held(self, key_id: str) -> MasterKey:
        key = self.keyring.configured if self.keyring.configured.key_id == key_id else self.keyring.primary
        assert key.key_id == key_id
        return key

    def may_seal(self) -> bool:
        """False when a finished rotation replaced this process's key: keys it sealed now
        would open for nobody restarted with the new key."""
        with self.factory() as session:
            retired = queries.retired_key_ids(session)
        return self.current().primary.key_id not in retired


# --- the rotation -----------------------------------------------------------------------------

TABLES = (("pool keys", cast(Table, PoolKey.__table__)), ("device keys", cast(Table, Device.__table__)))


def rotate(
    factory: sessionmaker[Session],
    current: MasterKey,
    new: MasterKey,
    progress: Callable[[str, int, int], None] = lambda _what, _done, _left: None,
    *,
    batch: int = BATCH,
) -> int:
    """Re-seal every private key under ``new``; returns how many were re-sealed.

    Safe to run again after a crash (it resumes), and while the service runs.
    """
    if new.key_id == current.key_id:
        raise ValueError("the new master key is the current one")
    _start(factory, current, new)
    # Every running process learns the new key from the database within a look interval;
    # re-sealing starts only once they all may have, so that none meets a key it cannot open.
    time.sleep(SETTLE_SECONDS)
    keyring = Keyring(current)
    keyring.add(new)
    done = 0
    while True:
        moved = sum(
            _reseal_all(factory, keyring, new, what, table, progress, batch) for what, table in TABLES
        )
        done += moved
        if moved == 0:
            time.sleep(SETTLE_SECONDS)  # a process may have sealed with the old key just now
            if not any(_left(factory, table, new) for _, table in TABLES):
                break
    with session_scope(factory) as session:
        rotation = session.get(MasterKeyRotation, new.key_id)
        assert rotation is not None
        rotation.wrapped_key, rotation.finished_at = None, utcnow()
    return done


def _start(factory: sessionmaker[Session], current: MasterKey, new: MasterKey) -> None:
    with session_scope(factory) as session:
        running = queries.active_rotation(session)
        if running is not None and running.new_key_id != new.key_id:
            raise ValueError(
                f"a rotation to master key {running.new_key_id} is not finished: finish it first"
            )
        if running is None:
            session.add(
                MasterKeyRotation(
                    new_key_id=new.key_id,
                    old_key_id=current.key_id,
                    wrapped_key=wrap_key(current, new),
                    started_at=utcnow(),
                )
            )


def _reseal_all(
    factory: sessionmaker[Session],
    keyring: Keyring,
    new: MasterKey,
    what: str,
    table: Table,
    progress: Callable[[str, int, int], None],
    batch: int,
) -> int:
    moved = 0
    while True:
        with session_scope(factory) as session:
            rows = queries.sealed_otherwise(session, table, new.key_id, batch)
            resealed = [
                (
                    row.key,
                    keyring.reseal(
                        SealedKeyPair(row.public_key, row.sealed_private_key, row.master_key_id), new
                    ),
                )
                for row in rows
            ]
            queries.store_resealed(
                session, table, [(key, pair.sealed_private, new.key_id) for key, pair in resealed]
            )
        moved += len(rows)
        if rows:
            progress(what, moved, _left(factory, table, new))
        if len(rows) < batch:
            return moved


def _left(factory: sessionmaker[Session], table: Table, new: MasterKey) -> int:
    with factory() as session:
        return queries.count_sealed_otherwise(session, table, new.key_id)
