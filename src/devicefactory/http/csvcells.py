"""CSV cells that a spreadsheet will not run (SPEC §11): the one rule for every CSV and LOG file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

# A spreadsheet runs a cell that starts with one of these as a formula (§11).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell as text, with a leading ' when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_rows(rows: Iterable[Iterable[object]]) -> bytes:
    """Rows as CSV text (``\\n`` line ends), every cell through ``safe_cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([safe_cell(value) for value in row] for row in rows)
    return buffer.getvalue().encode()
