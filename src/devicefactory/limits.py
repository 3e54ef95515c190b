"""Limits that keep one tenant's load from degrading another's (§11).

Both are counted in the process that serves the request: with N web processes a client
may reach N times a limit, which still bounds it (docs/security.md). Each refusal is a
TooManyRequests (AFS-429) that says what was limited and when to retry.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from devicefactory.errors import TooManyRequests

# Called with the limit's name on every refusal (the metrics count them).
OnRefusal = Callable[[str], None]


def _ignore(_name: str) -> None:
    return None


@dataclass
class InFlightLimit:
    """At most ``limit`` requests of one key (an OEM) at once."""

    name: str
    limit: int
    what: str
    retry_after: int = 2
    on_refusal: OnRefusal = _ignore
    _in_flight: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, key: str) -> Slot:
        with self._lock:
            held = self._in_flight.get(key, 0)
            if held >= self.limit:
                refused = True
            else:
                refused = False
                self._in_flight[key] = held + 1
        if refused:
            self.on_refusal(self.name)
            raise TooManyRequests(f"{self.what}: at most {self.limit} at once", self.retry_after)
        return Slot(self, key)

    def _leave(self, key: str) -> None:
        with self._lock:
            left = self._in_flight.get(key, 1) - 1
            if left:
                self._in_flight[key] = left
            else:
                self._in_flight.pop(key, None)

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)


class Slot:
    """One admitted request; released once, by ``release`` or by leaving a ``with`` block."""

    def __init__(self, limit: InFlightLimit, key: str) -> None:
        self._limit, self._key, self._held = limit, key, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._limit._leave(self._key)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


@dataclass
class RateLimit:
    """At most ``limit`` events of one key in any ``window`` seconds (a sliding window)."""

    name: str
    limit: int
    window: float
    what: str
    on_refusal: OnRefusal = _ignore
    clock: Callable[[], float] = time.monotonic
    _events: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, key: str) -> None:
        """Count one event of ``key``; TooManyRequests when the window is full."""
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                wait = math.ceil(events[0] + self.window - now)
            else:
                events.append(now)
                wait = 0
            self._forget_idle(now)
        if wait:
            self.on_refusal(self.name)
            raise TooManyRequests(f"{self.what}: at most {self.limit} a minute", max(1, wait))

    def _forget_idle(self, now: float) -> None:
        # Keys never seen again would otherwise be kept for ever (an attacker's random emails).
        if len(self._events) > 10_000:
            for key in [k for k, e in self._events.items() if not e or e[-1] <= now - self.window]:
                del self._events[key]
