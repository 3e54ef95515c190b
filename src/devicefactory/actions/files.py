"""The files of a factory action (§6): CSV, LOG, the reserve bundle, failed lines.

Every file but the bundle (at most 1000 devices) is streamed: read a page of rows at a
time, each page in a short session of its own, so that memory stays bounded, no
database connection is held between pages, and a download stops when its client goes.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.actions import queries
from devicefactory.actions.outcomes import OUTCOMES, outcome_label
from devicefactory.http.csvcells import safe_cell as safe_cell  # audit/service.py reads it here
from devicefactory.keys.crypto import build_reserve_bundle
from devicefactory.tables.actions import ActionType, FactoryAction

CSV_HEADER = ("dsn", "model", "status", "result", "error_code")
PAGE = 1000

Sessions = sessionmaker[Session]
Page = Sequence[Any]  # rows of a query, read by attribute


# Pages being read and rendered at once, whatever the number of downloads, and each lane
# rests as long as its page took: a storm of downloads gets at most half of one core per
# two, and the other requests of the process the rest (measured in bench/isolation.py).
_LANE = threading.BoundedSemaphore(max(1, (os.cpu_count() or 2) // 2))


def _pages(
    sessions: Sessions, fetch: Callable[[Session, Any, int], Page], key: int, render: Callable[[Page], bytes]
) -> Iterator[bytes]:
    """Pages of rows after the last row's ``key`` column, each read in its own session and
    rendered while this download holds the lane."""
    after: Any = None
    while True:
        with _LANE:
            started = time.monotonic()
            with sessions() as session:
                rows = fetch(session, after, PAGE)
            chunk = render(rows) if rows else b""
            time.sleep(time.monotonic() - started)
        if chunk:
            yield chunk
        if len(rows) < PAGE:
            return
        after = rows[-1][key]


def _csv_text(rows: Iterable[Iterable[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode()


def csv_file(sessions: Sessions, action: FactoryAction) -> Iterator[bytes]:
    """One row per DSN of the action (per line naming one, for an upload)."""
    yield _csv_text([CSV_HEADER])
    if action.type == ActionType.RESERVE:
        yield from _pages(
            sessions, lambda s, after, n: queries.reserve_rows(s, action.id, after, n), 0, _csv_text
        )
        return
    label = {outcome: outcome_label(outcome, validate_only=action.validate_only) for outcome in OUTCOMES}

    def rows(page: Page) -> bytes:
        return _csv_text(
            (line.dsn, line.model, line.device_status, label[line.outcome], line.error_code)
            for line in page
            if line.dsn
        )

    yield from _line_pages(sessions, action, rows, failed_only=False)


def _line_pages(
    sessions: Sessions, action: FactoryAction, render: Callable[[Page], bytes], *, failed_only: bool
) -> Iterator[bytes]:
    def fetch(session: Session, after: int | None, limit: int) -> Page:
        return queries.action_lines_page(session, action.id, after or 0, limit, failed_only=failed_only)

    return _pages(sessions, fetch, 0, render)


def log_file(sessions: Sessions, action: FactoryAction) -> Iterator[bytes]:
    """One line per problem (input line, dsn, code, message), then a summary."""
    if action.type != ActionType.RESERVE:
        yield from _line_pages(
            sessions, action, lambda page: "".join(map(_log_line, page)).encode(), failed_only=True
        )
    yield (summary_line(action) + "\n").encode()


def _log_line(line: Any) -> str:
    cells = (line.dsn, line.error_code, (line.message or "").replace("\n", " "))
    return f"{line.line_no}," + ",".join(safe_cell(cell) for cell in cells) + "\n"


def summary_line(action: FactoryAction) -> str:
    if action.type == ActionType.RESERVE:
        return f"# summary: reserve of {action.count} {action.model} devices: {action.status}"
    counts = ", ".join(
        f"{getattr(action, outcome)} {outcome_label(outcome, validate_only=action.validate_only)}"
        for outcome in OUTCOMES
    )
    return (
        f"# summary: {action.type} {action.status}: {action.lines_done} of {action.lines_total} lines, "
        + counts
    )


def failed_lines_file(sessions: Sessions, action: FactoryAction) -> Iterator[bytes]:
    """The lines that failed, in the upload's own format, ready to fix and upload again."""
    if action.file_header:
        yield (action.file_header + "\n").encode()
    yield from _line_pages(
        sessions, action, lambda page: "".join(line.raw + "\n" for line in page).encode(), failed_only=True
    )


def reserve_bundle(session: Session, action: FactoryAction, certificate_pem: str) -> bytes:
    """The zip of ``<DSN>.xml`` files, as CMS EnvelopedData to the OEM's certificate."""
    rows = queries.reserve_keys(session, action.id)
    return build_reserve_bundle([(row.dsn, row.public_key) for row in rows], certificate_pem.encode())
