"""RSA-2048 pairs for tests, made once per run on every core (keygen is ~40 ms a key)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.db import session_scope, utcnow
from devicefactory.keys import queries
from devicefactory.keys.crypto import MasterKey, SealedKeyPair, generate_sealed_key_pairs


class KeyCache:
    def __init__(self, master_key: MasterKey) -> None:
        self.master_key = master_key
        self.pairs: list[SealedKeyPair] = []

    def ensure(self, count: int) -> list[SealedKeyPair]:
        missing = count - len(self.pairs)
        if missing > 0:
            workers = max(1, multiprocessing.cpu_count())
            chunks = [missing // workers + (1 if i < missing % workers else 0) for i in range(workers)]
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as executor:
                secret = self.master_key.secret_bytes()
                for batch in executor.map(generate_sealed_key_pairs, [secret] * workers, chunks):
                    self.pairs.extend(batch)
        return self.pairs[:count]

    def fill_pool(self, factory: sessionmaker[Session], count: int) -> list[SealedKeyPair]:
        """Put ``count`` distinct pairs into the (empty) pool."""
        pairs = self.ensure(count)
        with session_scope(factory) as session:
            queries.add_keys(session, pairs, utcnow())
        return pairs
