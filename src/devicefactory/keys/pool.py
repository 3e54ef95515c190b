"""The key pool: RSA-2048 pairs made ahead of demand on every core, sealed at rest.

Keys are made in threads: ``cryptography`` releases the GIL while it generates, so a
thread per core keeps every core busy (measured: 2 threads make 2.0x the keys of one),
and a stopping worker has no child processes to end or to leave behind.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.db import session_scope, utcnow
from devicefactory.keys import queries
from devicefactory.keys.crypto import MasterKey, SealedKeyPair, generate_sealed_key_pairs
from devicefactory.keys.master import KeyringSource
from devicefactory.processes import pause

log = logging.getLogger("devicefactory.keys")
KEYS_PER_TASK = 4


class KeyPoolFiller:
    """Keeps the pool at its target with one key-generation thread per core."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        keys: KeyringSource | MasterKey,
        *,
        target: int,
        workers: int,
        poll_seconds: float = 1.0,
    ) -> None:
        self.session_factory = session_factory
        self.keys = keys
        self.target = target
        self.workers = workers
        self.poll_seconds = poll_seconds
        self.worker_id = f"{socket.gethostname()[:40]}:{os.getpid()}:{id(self) % 10_000}"
        self.rate = 0.0  # keys/s of the last fill, reported for AFS-605's Retry-After

    def run(self, stop: threading.Event) -> None:
        if self.target <= 0:
            return
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="keygen")
        try:
            while not stop.is_set():
                deficit = self.target - self._size()
                if deficit > 0 and not self._may_seal():
                    log.error(
                        "this process holds a master key that a rotation replaced: restart it with "
                        "the new DEVICEFACTORY_MASTER_KEY_FILE; the key pool is not filled meanwhile"
                    )
                    pause(stop, 60)
                    continue
                if deficit <= 0:
                    self._report()
                    pause(stop, self.poll_seconds)
                    continue
                self._fill(executor, deficit, stop)
        finally:
            # Keys being made when we stop are simply not stored (a task is a few keys).
            executor.shutdown(wait=False, cancel_futures=True)
            with session_scope(self.session_factory) as session:
                queries.forget_filler(session, self.worker_id)

    def _fill(self, executor: Executor, deficit: int, stop: threading.Event) -> None:
        """Keep every core busy until ``deficit`` keys are stored (or we are stopped)."""
        in_flight: set[Future[list[SealedKeyPair]]] = set()
        scheduled = stored = 0
        started = checked = time.monotonic()
        while (scheduled < deficit or in_flight) and not stop.is_set():
            if time.monotonic() - checked >= self.poll_seconds:
                # Other workers fill the same pool: schedule only what is still missing once
                # their keys and ours in flight are counted (else each makes the whole deficit).
                checked = time.monotonic()
                missing = self.target - self._size() - (scheduled - stored)
                deficit = min(deficit, scheduled + max(0, missing))
            while scheduled < deficit and len(in_flight) < self.workers * 2:
                batch = min(KEYS_PER_TASK, deficit - scheduled)
                # Asked per task: a rotation's new key seals from the next task on.
                secret = self._sealing_key().secret_bytes()
                in_flight.add(executor.submit(generate_sealed_key_pairs, secret, batch))
                scheduled += batch
            done, in_flight = _wait_some(in_flight)
            pairs = [pair for future in done for pair in future.result()]
            stored += len(pairs)
            self.rate = stored / max(time.monotonic() - started, 1e-3)
            with session_scope(self.session_factory) as session:
                now = utcnow()
                queries.add_keys(session, pairs, now)
                queries.report_fill_rate(session, self.worker_id, self.rate, now)
        for future in in_flight:
            future.cancel()

    def _sealing_key(self) -> MasterKey:
        return self.keys.current().primary if isinstance(self.keys, KeyringSource) else self.keys

    def _may_seal(self) -> bool:
        return self.keys.may_seal() if isinstance(self.keys, KeyringSource) else True

    def _report(self) -> None:
        """While the pool is full: the rate of the last fill, kept fresh."""
        if self.rate:
            with session_scope(self.session_factory) as session:
                queries.report_fill_rate(session, self.worker_id, self.rate, utcnow())

    def _size(self) -> int:
        with self.session_factory() as session:
            return queries.pool_size(session)


def _wait_some(
    futures: set[Future[list[SealedKeyPair]]],
) -> tuple[set[Future[list[SealedKeyPair]]], set[Future[list[SealedKeyPair]]]]:
    done, pending = wait(futures, return_when=FIRST_COMPLETED)
    return set(done), set(pending)


def fill_pool_now(
    session_factory: sessionmaker[Session],
    master_key: MasterKey,
    count: int,
    workers: int,
    on_progress: Callable[[int], None] | None = None,
) -> float:
    """Generate ``count`` keys into the pool and return keys/s (bench, tests, CLI)."""
    started = time.perf_counter()
    filler = KeyPoolFiller(session_factory, master_key, target=count, workers=workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="keygen") as executor:
        filler._fill(executor, count, threading.Event())
    if on_progress:
        on_progress(count)
    return count / (time.perf_counter() - started)
