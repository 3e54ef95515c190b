"""Background workers: the key pool filler and the factory-action runner."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from devicefactory.actions.runner import ActionRunner
from devicefactory.config import Settings
from devicefactory.db import make_engine, make_session_factory
from devicefactory.keys.crypto import MasterKey
from devicefactory.keys.pool import KeyPoolFiller

log = logging.getLogger("devicefactory.workers")


def run_workers(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run every background worker until ``stop`` is set or the process is signalled."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    factory = make_session_factory(make_engine(settings.database_url))
    master_key = MasterKey.load_or_create(settings.master_key_file)
    filler = KeyPoolFiller(factory, master_key, target=settings.key_pool_target, workers=settings.key_workers)
    runner = ActionRunner(factory, settings)
    threads = [_thread("key-pool", filler.run, stop), _thread("action-runner", runner.run, stop)]
    log.info("background workers started: %s", ", ".join(t.name for t in threads))
    stop.wait()
    for thread in threads:
        thread.join(30)
    log.info("background workers stopped")


def _thread(name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> threading.Thread:
    def guarded() -> None:
        try:
            target(stop)
        except Exception:
            log.exception("%s worker failed; stopping the workers", name)
            stop.set()

    thread = threading.Thread(target=guarded, name=name, daemon=True)
    thread.start()
    return thread


def _worker_main(parent_pid: int) -> None:
    from devicefactory.cli import configure_logging

    configure_logging()
    stop = threading.Event()
    threading.Thread(target=_stop_with_parent, args=(parent_pid, stop), daemon=True).start()
    run_workers(Settings(), stop)


def _stop_with_parent(parent_pid: int, stop: threading.Event) -> None:
    # uvicorn ends `serve` by re-raising the signal it caught, and a web process may be
    # SIGKILLed: either way no cleanup code of the parent runs, so the child watches it.
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            log.info("the serving process is gone; stopping the background workers")
            stop.set()


def start_worker_process() -> BaseProcess:
    """The workers of ``devicefactory serve``, in a child process of their own."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_worker_main, args=(os.getpid(),), name="devicefactory-worker")
    process.start()
    return process
