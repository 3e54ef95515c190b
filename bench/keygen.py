"""Key pool fill rate against raw ``cryptography`` RSA-2048 key generation on all cores.

Run alone: ``python -m bench.keygen``. This module imports nothing of the service at
the top: spawned worker processes import it, and the raw reference must not pay
for importing SQLAlchemy and the models.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from bench.report import Check, median

KEYS = 200
ROUNDS = 5
OPENSSL_KEYS_PER_CORE = 4
TARGET_RATIO = 0.90


@dataclass(frozen=True)
class Sample:
    """One timed generation of KEYS keys."""

    keys_per_s: float
    cpu_ms_per_key: float  # this process and its finished children, so worker start-up counts


def raw_key(_index: int) -> int:
    """Worker task of the reference: one key, nothing else."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).key_size


def timed(work: Callable[[], object], count: int) -> Sample:
    """Wall and CPU time of ``work``, which makes ``count`` keys."""
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    return Sample(count / elapsed, (_cpu_seconds() - cpu_before) * 1000 / count)


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def raw_sample(count: int, workers: int) -> Sample:
    """Bare keygen in a spawned process pool (pool start-up included, as in the service)."""

    def work() -> None:
        """Start the pool, make the keys, stop the pool."""
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor:
            list(executor.map(raw_key, range(count)))

    return timed(work, count)


def pool_sample(count: int, workers: int) -> Sample:
    """``fill_pool_now`` into a fresh migrated SQLite database."""
    from devicefactory.db import make_engine, make_session_factory
    from devicefactory.keys.crypto import MasterKey
    from devicefactory.keys.pool import fill_pool_now
    from devicefactory.migrate import upgrade_database

    with tempfile.TemporaryDirectory(prefix="devicefactory-bench-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'keygen.db'}")
        upgrade_database(engine)
        factory, master = make_session_factory(engine), MasterKey(os.urandom(32))
        sample = timed(lambda: fill_pool_now(factory, master, count, workers), count)
        engine.dispose()
    return sample


def openssl_rate(workers: int, per_worker: int = OPENSSL_KEYS_PER_CORE) -> float | None:
    """Keys/s of the system ``openssl genpkey``, one process per core (for information)."""
    if shutil.which("openssl") is None:
        return None
    command = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]

    def serial(_worker: int) -> None:
        """One core's share: openssl runs one after another."""
        for _ in range(per_worker):
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(serial, range(workers)))
    return workers * per_worker / (time.perf_counter() - started)


def openssl_version() -> str:
    """The system openssl's version line."""
    if shutil.which("openssl") is None:
        return "absent"
    return subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()


def measure(count: int = KEYS, rounds: int = ROUNDS) -> tuple[list[Sample], list[Sample]]:
    """Interleave the two, alternating which goes first, so drift on a shared machine hits both."""
    workers = os.cpu_count() or 1
    pool: list[Sample] = []
    raw: list[Sample] = []
    for index in range(rounds):
        if index % 2:
            pool.append(pool_sample(count, workers))
            raw.append(raw_sample(count, workers))
        else:
            raw.append(raw_sample(count, workers))
            pool.append(pool_sample(count, workers))
        print(f"  round {index + 1}: raw {_text(raw[-1])}, pool fill {_text(pool[-1])}", flush=True)
    return pool, raw


def _text(sample: Sample) -> str:
    """One sample as printed in a round line."""
    return f"{sample.keys_per_s:.1f} keys/s ({sample.cpu_ms_per_key:.0f} ms CPU/key)"


def run() -> dict[str, Any]:
    """Measure, print one line and return the figures."""
    workers = os.cpu_count() or 1
    pool, raw = measure()
    pool_rate, raw_rate = median([s.keys_per_s for s in pool]), median([s.keys_per_s for s in raw])
    pool_cpu, raw_cpu = median([s.cpu_ms_per_key for s in pool]), median([s.cpu_ms_per_key for s in raw])
    openssl = openssl_rate(workers)
    check = Check("keygen: pool fill / raw keygen", pool_rate / raw_rate, TARGET_RATIO)
    print(
        f"keygen: pool fill {pool_rate:.1f} keys/s; raw cryptography {raw_rate:.1f} keys/s "
        f"({workers} processes, {KEYS} keys); ratio {check.value:.2f} (target {check.target_text()}) "
        f"{check.verdict()}; CPU/key {pool_cpu:.1f} ms vs {raw_cpu:.1f} ms raw ({raw_cpu / pool_cpu:.2f}); "
        f"system openssl {f'{openssl:.1f} keys/s' if openssl else 'n/a'} (information)"
    )
    return {
        "keys_per_measurement": KEYS,
        "workers": workers,
        "pool_fill": [asdict(s) for s in pool],
        "raw": [asdict(s) for s in raw],
        "pool_fill_keys_per_s": pool_rate,
        "raw_keys_per_s": raw_rate,
        "cpu_ms_per_key": {"pool_fill": pool_cpu, "raw": raw_cpu},
        "cpu_efficiency_ratio": raw_cpu / pool_cpu,
        "openssl_keys_per_s": openssl,
        "openssl_version": openssl_version(),
        "checks": [check.as_dict()],
    }


if __name__ == "__main__":
    run()
