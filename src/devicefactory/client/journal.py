"""The offline journal: factory records kept on disk until the service takes them (SPEC §13).

One file per profile, ``<config dir>/journal/<profile>.jsonl``, mode 0600, one JSON object a
line, only ever appended to (each line fsync'd before the command goes on):

    {"v": 1, "op": "record", "key": K, "dsn": D, "operation": "manufacture", "body": {...}, "at": T}
    {"v": 1, "op": "sending", "key": K, "at": T}        about to send it (its outcome in doubt)
    {"v": 1, "op": "done", "key": K, "status": 200, "at": T}
    {"v": 1, "op": "refused", "key": K, "status": 422, "error": "AFS-606: ...", "at": T}
    {"v": 1, "op": "dropped", "key": K, "at": T}        the operator gave up on a refused one
    {"v": 1, "op": "rekey", "key": K, "new_key": K2, "at": T}   send it under K2 from now on

A record's state is its last mark: pending (none, or ``sending``), done, refused, dropped.
``K`` is the record's Idempotency-Key, made when it was first tried, so every send of it
carries the same key. A line torn by a crash mid-write was never acknowledged; it is cut
off before the next append. Once a sync has finished, the file is rewritten (atomically)
without the done and dropped records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from devicefactory.client.profiles import config_dir, private_dir, sync_directory, write_private

VERSION = 1
PENDING, DONE, REFUSED, DROPPED = "pending", "done", "refused", "dropped"


@dataclass
class Entry:
    """One journaled record and what became of it."""

    key: str
    dsn: str
    operation: str
    body: dict[str, Any]
    at: str
    state: str = PENDING
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    marks: list[dict[str, Any]] = field(default_factory=list)
    # The key sent from now on: the record's own, or the one a "rekey" mark gave it.
    send_key: str = ""

    def __post_init__(self) -> None:
        self.send_key = self.send_key or self.key

    @property
    def in_doubt(self) -> bool:
        """Sent before without a known outcome: the service may already have applied it."""
        return self.state == PENDING and self.attempts > 0


class SyncBusy(click.ClickException):
    def __init__(self) -> None:
        super().__init__("another sync of this profile's journal is running")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of_profile(cls, profile: str) -> Journal:
        return cls(config_dir() / "journal" / f"{profile}.jsonl")

    # --- reading --------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Every record in journal order, with its state."""
        found: dict[str, Entry] = {}
        for line in self._lines():
            if line.get("op") == "record":
                found[line["key"]] = Entry(
                    key=line["key"],
                    dsn=line["dsn"],
                    operation=line["operation"],
                    body=line["body"],
                    at=line["at"],
                    attempts=int(line.get("attempts", 0)),
                )
            elif (entry := found.get(line.get("key", ""))) is not None:
                _apply_mark(entry, line)
        return list(found.values())

    def _lines(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # a torn last line (a crash mid-write): never acknowledged
            if isinstance(line, dict):
                yield line

    # --- writing --------------------------------------------------------------------------

    def append_record(
        self, *, key: str, dsn: str, operation: str, body: dict[str, Any], attempts: int = 0
    ) -> Entry:
        """Journal a record durably; returns it (pending)."""
        line: dict[str, Any] = {"op": "record", "key": key, "dsn": dsn, "operation": operation, "body": body}
        if attempts:
            line["attempts"] = attempts
        written = self._append(line)
        return Entry(key=key, dsn=dsn, operation=operation, body=body, at=written["at"], attempts=attempts)

    def mark(self, key: str, op: str, **info: Any) -> None:
        """Record durably what became of the record ``key`` (sending, done, refused, dropped)."""
        self._append({"op": op, "key": key, **info})

    def _append(self, line: dict[str, Any]) -> dict[str, Any]:
        stamped = {"v": VERSION, **line, "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        data = (json.dumps(stamped, separators=(",", ":")) + "\n").encode()
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                _cut_torn_tail(fd)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                sync_directory(self.path.parent)
        return stamped

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A lock file beside the journal, not the journal itself: compaction replaces the
        # journal's inode, and an appender waiting on the old one would write into the void.
        lock = private_dir(self.path.parent) / f"{self.path.stem}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def sync_lock(self) -> Iterator[None]:
        """Held for a whole sync, so two syncs never send the same journal at once."""
        lock = private_dir(self.path.parent) / f"{self.path.stem}.sync.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SyncBusy() from None
            yield
        finally:
            os.close(fd)

    def compact(self) -> None:
        """Rewrite the journal without its done and dropped records (call under sync_lock)."""
        with self._locked():
            entries = self.entries()
            if all(e.state in (PENDING, REFUSED) for e in entries):
                return
            lines = []
            for entry in entries:
                if entry.state in (DONE, DROPPED):
                    continue
                lines.append(
                    {
                        "v": VERSION,
                        "op": "record",
                        "key": entry.key,
                        "dsn": entry.dsn,
                        "operation": entry.operation,
                        "body": entry.body,
                        "at": entry.at,
                        **({"attempts": entry.attempts} if entry.attempts else {}),
                    }
                )
                lines += [m for m in entry.marks if m.get("op") == REFUSED][-1:]
            write_private(self.path, "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines))


def _apply_mark(entry: Entry, line: dict[str, Any]) -> None:
    op = line.get("op")
    if op == "sending":
        entry.attempts += 1
        entry.state = PENDING
    elif op == "rekey":
        entry.send_key = line["new_key"]
    elif op in (DONE, REFUSED, DROPPED):
        entry.state = op
        entry.status = line.get("status", entry.status)
        entry.error = line.get("error", entry.error)
        entry.marks.append(line)


def _cut_torn_tail(fd: int) -> None:
    """Drop an unfinished last line (no newline: the writer died before its fsync returned)."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    tail_start = max(0, size - 65536)
    tail = os.pread(fd, size - tail_start, tail_start)
    if tail.endswith(b"\n"):
        return
    cut = tail.rfind(b"\n")
    os.ftruncate(fd, tail_start + cut + 1 if cut >= 0 else tail_start)
