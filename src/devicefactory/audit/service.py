"""Reading the audit log: who may, which entries, and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts.policy import Actor, Role, require
from devicefactory.actions.files import safe_cell
from devicefactory.audit import queries
from devicefactory.audit.queries import AuditFilter
from devicefactory.audit.schemas import CSV_HEADER, csv_row
from devicefactory.errors import ValidationFailed
from devicefactory.tables.audit import AuditEntry

MAX_PAGE = 500
CSV_PAGE = 1000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_ID = 2**63 - 1


def may_read_audit(actor: Actor) -> bool:
    """OEM::Admin (its OEM's entries) and Ayla::Admin (every entry)."""
    return actor.is_platform_admin or actor.role is Role.OEM_ADMIN


def audit_filter(actor: Actor, params: Mapping[str, str | None]) -> AuditFilter:
    """The filters of a request (``from``, ``to``, ``user``, ``what``, ``dsn``), behind the wall.

    ``from`` is inclusive and ``to`` exclusive; a date alone in ``to`` means through the end
    of that day (``to=2026-12-03`` includes the 3rd). Times without a zone are UTC.
    """
    require(may_read_audit(actor), "Forbidden: only OEM::Admin and Ayla::Admin read the audit log")
    failures: list[str] = []
    start = _moment("from", params.get("from"), failures, end_of_day=False)
    end = _moment("to", params.get("to"), failures, end_of_day=True)
    if failures:
        raise ValidationFailed.of(failures)
    return AuditFilter(
        all_oems=actor.is_platform_admin,
        oem_id=actor.oem_id,
        start=start,
        end=end,
        user=_text(params.get("user")),
        what=_text(params.get("what")),
        dsn=_text(params.get("dsn")),
    )


def search_entries(
    session: Session, wanted: AuditFilter, *, cursor: str | None, limit: str | None
) -> tuple[Sequence[AuditEntry], int | None]:
    """A page of entries, newest first, and the cursor of the next page (None at the end)."""
    size = _limit(limit)
    before = _cursor(cursor)
    entries = queries.newest_first(session, wanted, before_id=before, limit=size)
    return entries, entries[-1].id if len(entries) == size else None


@dataclass(frozen=True)
class AuditCsv:
    """The export: every matching entry, oldest first, read a page at a time as it is sent."""

    filename: str
    media_type: str
    chunks: Iterator[bytes]


def audit_csv(pages: sessionmaker[Session], wanted: AuditFilter) -> AuditCsv:
    return AuditCsv("audit.csv", "text/csv", _csv_chunks(pages, wanted))


def _csv_chunks(pages: sessionmaker[Session], wanted: AuditFilter) -> Iterator[bytes]:
    yield _csv_text([CSV_HEADER])
    after: int | None = None
    while True:
        with pages() as session:  # no connection is held between pages
            entries = queries.in_chain_order(session, wanted, after_id=after, limit=CSV_PAGE)
            rows = [csv_row(entry) for entry in entries]
        if rows:
            yield _csv_text(rows)
        if len(entries) < CSV_PAGE:
            return
        after = entries[-1].id


def _csv_text(rows: Sequence[Sequence[object]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode()


def _moment(name: str, value: str | None, failures: list[str], *, end_of_day: bool) -> datetime | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        parsed = datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        failures.append(f"{name} {text} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)")
        return None


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _limit(value: str | None) -> int:
    if value is None or not value.strip():
        return 50
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise ValidationFailed.of([f"limit must be an integer between 1 and {MAX_PAGE}"])
    return int(value)


def _cursor(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    if not value.strip().isdigit():
        raise ValidationFailed.of(["cursor must be the next_cursor of the page before"])
    return min(int(value), _MAX_ID)
