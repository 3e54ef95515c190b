"""Background workers: the key pool filler and the factory-action runner."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from multiprocessing.process import BaseProcess

from devicefactory.config import Settings

log = logging.getLogger("devicefactory.workers")


def run_workers(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run every background worker until ``stop`` is set or the process is signalled."""
    stop = stop or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("background workers started")
    stop.wait()
    log.info("background workers stopped")


def _worker_main() -> None:
    from devicefactory.cli import configure_logging

    configure_logging()
    run_workers(Settings())


def start_worker_process() -> BaseProcess:
    """The workers of ``devicefactory serve``, in a child process of their own."""
    process = multiprocessing.get_context("spawn").Process(target=_worker_main, name="devicefactory-worker")
    process.start()
    return process
