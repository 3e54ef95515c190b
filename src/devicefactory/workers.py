"""Background workers: the key pool filler and the factory-action runner."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.actions.runner import ActionRunner
from devicefactory.actions.service import sweep_stored_files
from devicefactory.config import Settings
from devicefactory.db import make_engine, make_session_factory, session_scope, utcnow
from devicefactory.keys.master import KeyringSource, load_master_key
from devicefactory.keys.pool import KeyPoolFiller
from devicefactory.processes import SERVE_PID_VARIABLE, join_all, pause
from devicefactory.webhooks.delivery import WebhookSender

log = logging.getLogger("devicefactory.workers")
# A batch being worked commits (or rolls back) within this; keys being made are dropped.
STOP_SECONDS = 8
TIDY_SECONDS = 300


def run_workers(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run every background worker until ``stop`` is set or the process is signalled."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    factory = make_session_factory(make_engine(settings.database_url))
    keys = KeyringSource(load_master_key(settings), factory)
    filler = KeyPoolFiller(factory, keys, target=settings.key_pool_target, workers=settings.key_workers)
    runner = ActionRunner(factory, settings)
    threads = [
        _thread("key-pool", filler.run, stop),
        _thread("action-runner", runner.run, stop),
        _thread("maintenance", lambda s: keep_tidy(factory, settings, s), stop),
    ]
    sender = WebhookSender(factory, settings)
    threads += [_thread(f"webhooks-{n}", sender.run, stop) for n in range(settings.webhook_senders)]
    log.info("background workers started: %s", ", ".join(t.name for t in threads))
    while not pause(stop, 1.0):
        pass
    log.info("stopping the background workers")
    join_all(threads, STOP_SECONDS)
    log.info("background workers stopped")


def keep_tidy(factory: sessionmaker[Session], settings: Settings, stop: threading.Event) -> None:
    """Every few minutes: delete uploads past their retention and files no action took."""
    retention = timedelta(days=settings.upload_retention_days)
    while not stop.is_set():
        try:
            with session_scope(factory) as session:
                gone = sweep_stored_files(session, now=utcnow(), retention=retention)
            if gone:
                log.info("deleted %s stored upload(s) past retention or never claimed", gone)
        except Exception:  # a database hiccup: try again next time
            log.exception("could not sweep stored uploads")
        pause(stop, TIDY_SECONDS)


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


def start_worker_process() -> subprocess.Popen[bytes]:
    """The workers of ``devicefactory serve``: ``devicefactory worker`` in a child process.

    A plain subprocess, not multiprocessing: nothing (no resource tracker) is left to
    outlive it, and it ends with ``serve`` (processes.end_with_serve).
    """
    env = {**os.environ, SERVE_PID_VARIABLE: str(os.getpid())}
    return subprocess.Popen([sys.executable, "-m", "devicefactory", "worker"], env=env)
