"""Process lifetimes: a child of ``serve`` ends when ``serve`` does, however it ends.

``serve`` may end by a signal that uvicorn re-raises after its shutdown, or by SIGKILL:
either way no clean-up code of its own runs. So each child arranges its own end: on
Linux the kernel sends it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and a
watcher thread notices a new parent within half a second everywhere else. SIGTERM then
runs the child's ordinary, graceful stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("devicefactory.processes")
_PR_SET_PDEATHSIG = 1
# Set by ``serve`` for the processes it starts (its web workers and background worker).
SERVE_PID_VARIABLE = "DEVICEFACTORY_SERVE_PID"


def end_with_parent(parent_pid: int) -> None:
    """Receive SIGTERM when the process ``parent_pid`` (our parent) is gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def pause(stop: threading.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``, waking early when ``stop`` is set; True when it is set.

    Sleeps in short slices rather than ``stop.wait(seconds)``: a timed wait on a lock
    never times out in a process whose clocks libfaketime shifts (as the test suite is
    run, to prove it passes on any date), while ``time.sleep`` keeps working.
    """
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(_SLICE, left))
    return True


def join_all(threads: list[threading.Thread], seconds: float) -> None:
    """Wait up to ``seconds`` in all for ``threads`` to end (see ``pause`` for why not join)."""
    deadline = time.monotonic() + seconds
    while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline:
        time.sleep(_SLICE)


_SLICE = 0.05


def _watch_parent(parent_pid: int) -> None:
    # Checked at once too: the parent may have died before prctl took effect.
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    log.info("the parent process %s is gone; stopping", parent_pid)
    os.kill(os.getpid(), signal.SIGTERM)


def end_with_serve() -> None:
    """In a process that ``serve`` started: end with it — at once if ``serve`` died while
    this process was starting (uvicorn may have just replaced a web worker), when the
    kernel's parent-death signal can no longer come."""
    serve_pid = os.environ.get(SERVE_PID_VARIABLE, "")
    if serve_pid.isdigit() and (int(serve_pid) == os.getppid() or not _alive(int(serve_pid))):
        end_with_parent(int(serve_pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # somebody else's process
    return True
