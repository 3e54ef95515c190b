"""Sealed key pairs for the HTTP benchmarks, made once and cached between runs.

Key generation costs ~25 keys/s per core, so the first run makes the pairs with the
service's own ``fill_pool_now`` (into a scratch database) and later runs reuse them
from a pickle. They are sealed with ``results/master.key``, which every run and
every server under test shares; a new master key makes the cache stale.

A benchmark restocks its pool from these pairs between timed requests, so one pair
may back several devices of a bench database. The service never does that, but
what reserve and manufacture do does not depend on which pair they get.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bench.report import RESULTS_DIR
from devicefactory.db import make_engine, make_session_factory, session_scope, utcnow
from devicefactory.keys import queries
from devicefactory.keys.crypto import MasterKey, SealedKeyPair
from devicefactory.keys.pool import fill_pool_now
from devicefactory.migrate import upgrade_database
from devicefactory.tables.keys import PoolKey

MASTER_KEY_FILE = RESULTS_DIR / "master.key"
CACHE_FILE = RESULTS_DIR / "keycache.pickle"


def master_key() -> MasterKey:
    """The bench's own master key, created on first use."""
    return MasterKey.load_or_create(MASTER_KEY_FILE)


def cached_pairs(count: int) -> list[SealedKeyPair]:
    """``count`` distinct pairs sealed with the bench master key, generating what the cache lacks."""
    key = master_key()
    pairs = _load(key)
    missing = count - len(pairs)
    if missing > 0:
        print(f"  generating {missing} key pairs (cached for later runs) ...", flush=True)
        started = time.perf_counter()
        pairs += _generate(key, missing)
        print(f"  ... done in {time.perf_counter() - started:.0f} s", flush=True)
        _save(key, pairs)
    return pairs[:count]


def stock_pool(factory: sessionmaker[Session], pairs: list[SealedKeyPair]) -> None:
    """Add ``pairs`` to the key pool of the database behind ``factory``."""
    with session_scope(factory) as session:
        queries.add_keys(session, pairs, utcnow())


def _generate(key: MasterKey, count: int) -> list[SealedKeyPair]:
    """Run the service's own pool filler into a scratch database and read the pairs back."""
    with tempfile.TemporaryDirectory(prefix="devicefactory-keys-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'keys.db'}")
        upgrade_database(engine)
        factory = make_session_factory(engine)
        fill_pool_now(factory, key, count, os.cpu_count() or 1)
        with factory() as session:
            rows = session.execute(select(PoolKey.public_key, PoolKey.sealed_private_key)).all()
        engine.dispose()
    return [SealedKeyPair(row.public_key, row.sealed_private_key) for row in rows]


def _fingerprint(key: MasterKey) -> str:
    """Identifies the master key in the cache without storing it."""
    return hashlib.sha256(key.secret_bytes()).hexdigest()


def _load(key: MasterKey) -> list[SealedKeyPair]:
    """The cached pairs, or none when the cache is missing or made with another key."""
    try:
        with CACHE_FILE.open("rb") as f:
            data = pickle.load(f)  # our own file under bench/results
    except (FileNotFoundError, EOFError, pickle.UnpicklingError):
        return []
    if data.get("master_key_sha256") != _fingerprint(key):
        return []
    return [SealedKeyPair(public, sealed) for public, sealed in data["pairs"]]


def _save(key: MasterKey, pairs: list[SealedKeyPair]) -> None:
    """Write the cache atomically (a new file renamed over the old one)."""
    data = {
        "master_key_sha256": _fingerprint(key),
        "pairs": [(pair.public_pem, pair.sealed_private) for pair in pairs],
    }
    tmp = CACHE_FILE.with_suffix(".tmp")
    with tmp.open("wb") as f:
        pickle.dump(data, f)
    tmp.replace(CACHE_FILE)
