"""The files of a factory action (§6): CSV, LOG, the reserve bundle, failed lines."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

from sqlalchemy.orm import Session

from devicefactory.actions import queries
from devicefactory.actions.models import ActionType, FactoryAction
from devicefactory.actions.outcomes import OUTCOMES, outcome_label
from devicefactory.keys.crypto import build_reserve_bundle

CSV_HEADER = ("dsn", "model", "status", "result", "error_code")
# A spreadsheet runs a cell that starts with one of these as a formula (§11).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, with a leading ' when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_file(session: Session, action: FactoryAction) -> Iterator[str]:
    """One row per DSN of the action."""
    if action.type == ActionType.RESERVE:
        rows: Iterable[tuple[object, ...]] = (
            (row[0].dsn, row[0].model, row[0].status, row[1].result, row[1].error_code)
            for row in queries.reserve_rows(session, action.id)
        )
    else:
        rows = (
            (
                line.dsn,
                line.model,
                line.device_status,
                outcome_label(line.outcome, validate_only=action.validate_only),
                line.error_code,
            )
            for line in queries.action_lines(session, action.id)
        )
    return _csv_lines(_prepend(CSV_HEADER, rows))


def _prepend(first: tuple[str, ...], rows: Iterable[tuple[object, ...]]) -> Iterator[tuple[object, ...]]:
    yield first
    yield from rows


def log_file(session: Session, action: FactoryAction) -> Iterator[str]:
    """One line per problem (input line, dsn, code, message), then a summary."""
    if action.type != ActionType.RESERVE:
        for line in queries.action_lines(session, action.id, failed_only=True):
            cells = (line.dsn, line.error_code, (line.message or "").replace("\n", " "))
            yield f"{line.line_no}," + ",".join(safe_cell(cell) for cell in cells) + "\n"
    yield summary_line(action) + "\n"


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


def reserve_bundle(session: Session, action: FactoryAction, certificate_pem: str) -> bytes:
    """The zip of ``<DSN>.xml`` files, as CMS EnvelopedData to the OEM's certificate."""
    rows = queries.reserve_keys(session, action.id)
    return build_reserve_bundle([(row.dsn, row.public_key) for row in rows], certificate_pem.encode())


def failed_lines_file(session: Session, action: FactoryAction) -> Iterator[str]:
    """The lines that failed, in the upload's own format, ready to fix and upload again."""
    if action.file_header:
        yield action.file_header + "\n"
    for line in queries.action_lines(session, action.id, failed_only=True):
        yield line.raw + "\n"
