"""Streaming parser for factory log-file uploads (AFS 2.2 log lines, or a CSV with a header)."""

from __future__ import annotations

import csv
import enum
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import BinaryIO, NamedTuple, TypeAlias

from devicefactory.device_fields import FIELDS, Kind

MAX_LINE_LENGTH = 255

# What a line may carry, by API name (a CSV upload's column names): the device, the
# fields of the table, and the OEM a provision line was made for.
FIELD_NAMES: tuple[str, ...] = ("dsn", "model", *(field.name for field in FIELDS), "oem_id")
_FIELD_SET = frozenset(FIELD_NAMES)
# A log line's names for them (SPEC §7): the table's log names; dsn, model, oem_id as is.
_API_NAME = {"dsn": "dsn", "model": "model", "oem_id": "oem_id"} | {
    field.log_name: field.name for field in FIELDS if field.log_name
}
# The cell that tells two layouts of one length apart (A: 0, 1 or empty).
_FLAG_CELLS = frozenset(field.log_name for field in FIELDS if field.kind is Kind.FLAG and field.log_name)

STATUSES: tuple[str, ...] = ("pass", "fail", "label", "config", "config_test", "verify", "assign")
_STATUS_SET = frozenset(STATUSES)

# A UTF-8 char is at most 4 bytes, so a longer body can never be <= 255 chars.
_MAX_BODY_BYTES = 4 * MAX_LINE_LENGTH
# Bytes asked of readline(): bounds memory for a binary file with no newline at all.
_READ_LIMIT = 4096
_BOM = b"\xef\xbb\xbf"
# C0, DEL and C1 controls; TAB is refused too (the format has no use for it).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NOT_TEXT = "line is not text"


class UploadFormat(enum.StrEnum):
    LOG = "log"
    CSV = "csv"
    DSNS = "dsns"  # a retire upload: one DSN a line


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A device line; `fields` maps API field names to stripped values ("" kept)."""

    line_no: int
    raw: str
    version: int | None
    status: str | None
    err_code: int
    fields: Mapping[str, str]
    extra: str = ""


@dataclass(frozen=True, slots=True)
class LineError:
    """A refused line; `raw` is printable, one line, <= 255 chars (for the failed-lines file).

    `dsn` is the line's DSN when it has one where a DSN stands (field 7 of a log line, the
    dsn column of a CSV row), so the refusal can be reported against that device.
    """

    line_no: int
    raw: str
    message: str
    dsn: str | None = None


ParsedLine: TypeAlias = LogRecord | LineError


class _Layout(NamedTuple):
    version: int
    cells: tuple[str, ...]  # the log names of its cells (SPEC §7)
    names: tuple[str, ...]  # API names of the fields the layout carries
    pick: Callable[[list[str]], tuple[str, ...]]  # their values, from the line's cells
    flag_index: int | None  # cell of ads_connect_flag
    extra_index: int | None  # cell of the comment


# The 11 cells every line starts with, by the log's names (SPEC §7).
_HEAD = (
    *("version", "time", "timestamp", "status", "err_code"),
    *("model", "dsn", "mac", "mfg_model", "mfg_sn", "hwsig"),
)


def _layout(version: int, *tail: str) -> _Layout:
    cells = (*_HEAD, *tail)
    picked = [(i, _API_NAME[name]) for i, name in enumerate(cells) if name in _API_NAME]
    pick = itemgetter(*(i for i, _ in picked))
    flag = next((i for i, name in enumerate(cells) if name in _FLAG_CELLS), None)
    extra = cells.index("extra") if "extra" in cells else None
    return _Layout(version, cells, tuple(name for _, name in picked), pick, flag, extra)


_OEM = ("oem_id", "oem_model", "ads_connect_flag", "odm")
_SW = "mfg_sw_version"
# Candidates per version and field count, in the spec's order (first listed wins a tie).
_LAYOUTS: dict[str, dict[int, tuple[_Layout, ...]]] = {
    "2": {12: (_layout(2, "extra"),), 11: (_layout(2),)},
    "3": {
        17: (_layout(3, "extra", *_OEM, _SW), _layout(3, "extra", _SW, *_OEM)),
        16: (_layout(3, *_OEM, _SW), _layout(3, _SW, *_OEM)),
    },
    "4": {18: (_layout(4, "extra", *_OEM, _SW, "wifi_setup_key"),)},
}
_FLAG_VALUES = frozenset({"0", "1", ""})
_ZERO = frozenset({"0", ""})


def _printable(text: str) -> str:
    """Text safe for the failed-lines file: one line, no controls, at most 255 chars."""
    return _CONTROL.sub("\ufffd", text[: MAX_LINE_LENGTH + 1])[:MAX_LINE_LENGTH]


def _error(line_no: int, text: str, message: str, dsn: str | None = None) -> LineError:
    return LineError(line_no, _printable(text), message, dsn if dsn and _DSN_LIKE.fullmatch(dsn) else None)


# What a refused line's DSN cell must look like to be reported as its DSN (a title line's
# "dsn" is not one): a prefix and the 9-digit sequence.
_DSN_LIKE = re.compile(r"[A-Za-z0-9]{0,23}[0-9]{9}")


_DSN_CELL = _HEAD.index("dsn")


def _text_problem(text: str) -> str | None:
    # isprintable() is the fast path; it is also False for some harmless chars (NBSP).
    if not text.isprintable() and _CONTROL.search(text):
        return f"{_NOT_TEXT} (control character)"
    if len(text) > MAX_LINE_LENGTH:
        return f"line is longer than {MAX_LINE_LENGTH} characters"
    return None


def _decode(line_no: int, body: bytes) -> str | LineError:
    if len(body) > _MAX_BODY_BYTES:
        text = body[:_MAX_BODY_BYTES].decode("utf-8", "replace")
        return _error(line_no, text, f"line is longer than {MAX_LINE_LENGTH} characters")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(line_no, body.decode("utf-8", "replace"), f"{_NOT_TEXT} (not UTF-8)")
    problem = _text_problem(text)
    return text if problem is None else _error(line_no, text, problem)


def _pick_layout(candidates: tuple[_Layout, ...], cells: list[str]) -> _Layout | None:
    # A layout fits only if its A cell is 0, 1 or empty (v4 too): the spec's v3 examples
    # (Acme's "ledevb", the gateway's "zbgw") are told apart by that alone.
    for layout in candidates:
        if layout.flag_index is None or cells[layout.flag_index] in _FLAG_VALUES:
            return layout
    return None


def _layout_problem(version: str, cells: list[str]) -> str:
    by_count = _LAYOUTS[version]
    candidates = by_count.get(len(cells))
    if candidates is None:
        counts = " or ".join(str(n) for n in sorted(by_count))
        return f"version {version} has {counts} fields, this line has {len(cells)}"
    at = " or ".join(str(c.flag_index + 1) for c in candidates if c.flag_index is not None)
    flag = "ads_connect_flag (0, 1 or empty)"
    return f"version {version} with {len(cells)} fields needs {flag} at field {at}"


def _split(text: str) -> list[str]:
    cells = text.split(",")
    # Fast path: controls are refused before, so " " is the only whitespace of ASCII text.
    fast = text.isascii() and ", " not in text and " ," not in text
    if fast and text[:1] != " " and text[-1:] != " ":
        return cells
    return [cell.strip() for cell in cells]


def _parse_log_text(line_no: int, text: str) -> ParsedLine:
    cells = _split(text)
    version = cells[0]
    dsn = cells[_DSN_CELL] if len(cells) > _DSN_CELL else None
    by_count = _LAYOUTS.get(version)
    if by_count is None:
        message = f"unknown log version {version or '(empty)'}; expected 2, 3 or 4"
        return _error(line_no, text, message, dsn)
    layout = _pick_layout(by_count.get(len(cells), ()), cells)
    if layout is None:
        return _error(line_no, text, _layout_problem(version, cells), dsn)
    status, err_code = cells[3], cells[4]
    if status not in _STATUS_SET:
        return _error(line_no, text, f"unknown status {status!r}; expected {', '.join(STATUSES)}", dsn)
    if err_code in _ZERO:
        code = 0
    elif _INTEGER.fullmatch(err_code):
        code = int(err_code)
    else:
        return _error(line_no, text, f"err_code {err_code!r} is not an integer", dsn)
    fields = dict(zip(layout.names, layout.pick(cells), strict=False))
    extra = "" if layout.extra_index is None else cells[layout.extra_index]
    return LogRecord(line_no, text, layout.version, status, code, fields, extra)


def parse_log_line(line: str, line_no: int = 1) -> ParsedLine:
    """One already-decoded log line (no CSV detection)."""
    text = line.rstrip("\r\n")
    problem = _text_problem(text)
    return _parse_log_text(line_no, text) if problem is None else _error(line_no, text, problem)


def _csv_cells(text: str) -> list[str] | None:
    if '"' not in text:
        return _split(text)  # without quotes, CSV is a plain split (and much faster)
    try:
        row = next(csv.reader((text,), strict=True, skipinitialspace=True), [])
    except csv.Error:
        return None
    return [cell.strip() for cell in row]


def _is_header(cells: list[str]) -> bool:
    # A log line starts with its integer version, a CSV header with an API field name. So a
    # log-format title line ("version,time,...") stays one bad log line, not a refused file.
    return bool(cells) and cells[0].lower() in _FIELD_SET


def _header_problem(names: list[str]) -> str | None:
    unknown = [name for name in names if name not in _FIELD_SET]
    if unknown:
        known = ", ".join(FIELD_NAMES)
        return f"unknown CSV column(s) {', '.join(map(repr, unknown))}; known: {known}"
    if len(set(names)) != len(names):
        return "CSV header repeats a column"
    return None if "dsn" in names else "CSV header has no dsn column"


def _dsn_line(line_no: int, text: str) -> ParsedLine:
    """A line of a DSN list (a retire upload): one DSN, and at most a ``#`` comment after it."""
    dsn = text.split("#", 1)[0].strip()
    if not dsn or "," in dsn or any(char.isspace() for char in dsn):
        return _error(line_no, text, "a line of a retire upload holds one DSN and nothing else")
    return LogRecord(line_no, text, None, None, 0, {"dsn": dsn})


class UploadParser:
    """Stateful, streaming: feed it the file's lines in order.

    The first data line picks the format: a CSV header when its first cell is an API field
    name, else log lines (with ``dsn_list``, a retire upload's: one DSN a line). A header
    with an unknown, repeated or missing (dsn) column is one error and stops the file
    (`stopped`), as none of its rows could be mapped. Every physical line, comments
    included, must be UTF-8 text without control characters, <= 255 chars.
    """

    def __init__(self, *, dsn_list: bool = False) -> None:
        self.dsn_list = dsn_list
        self.format: UploadFormat | None = None
        self.header: list[str] | None = None
        self.header_raw: str | None = None
        self._started = False
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """True after a bad CSV header: the rest of the file yields nothing."""
        return self._stopped

    def parse_line(self, line_no: int, raw: bytes) -> ParsedLine | None:
        """Parse one physical line (terminator optional); None for blank/comment/header lines."""
        if self._stopped:
            return None
        body = raw.rstrip(b"\r\n")  # LF, CRLF or a lone CR at the end
        if not self._started:
            self._started = True
            body = body.removeprefix(_BOM)
        text = _decode(line_no, body)
        if isinstance(text, LineError):
            return text
        first = text[:1]
        if not first or first == "#" or first.isspace():
            stripped = text.strip()
            if not stripped or stripped[0] == "#":
                return None
        if self.format is UploadFormat.LOG:
            return _parse_log_text(line_no, text)
        if self.format is UploadFormat.CSV:
            return self._csv_row(line_no, text)
        if self.format is UploadFormat.DSNS:
            return _dsn_line(line_no, text)
        return self._first_line(line_no, text)

    def _first_line(self, line_no: int, text: str) -> ParsedLine | None:
        cells = _csv_cells(text)
        if (cells is None or not _is_header(cells)) and self.dsn_list:
            self.format = UploadFormat.DSNS
            return _dsn_line(line_no, text)
        if cells is None or not _is_header(cells):
            self.format = UploadFormat.LOG
            return _parse_log_text(line_no, text)
        self.format = UploadFormat.CSV
        names = [cell.lower() for cell in cells]
        problem = _header_problem(names)
        if problem is not None:
            self._stopped = True  # no sane mapping of columns: refuse the whole file
            return _error(line_no, text, problem)
        self.header, self.header_raw = names, text
        return None

    def _csv_row(self, line_no: int, text: str) -> ParsedLine:
        assert self.header is not None
        cells = _csv_cells(text)
        if cells is None:
            return _error(line_no, text, "line is not a valid CSV row")
        if len(cells) != len(self.header):
            message = f"CSV row has {len(cells)} fields, the header has {len(self.header)}"
            at = self.header.index("dsn")
            return _error(line_no, text, message, cells[at] if at < len(cells) else None)
        fields = dict(zip(self.header, cells, strict=True))
        return LogRecord(line_no, text, None, None, 0, fields)


def _skip_rest_of_line(stream: BinaryIO) -> None:
    while True:
        chunk = stream.readline(_READ_LIMIT)
        if not chunk or chunk.endswith(b"\n"):
            return


def iter_upload(stream: BinaryIO, *, dsn_list: bool = False) -> Iterator[ParsedLine]:
    """Every record or error of a binary stream, in order (uses UploadParser)."""
    parser = UploadParser(dsn_list=dsn_list)
    line_no = 0
    while not parser.stopped:
        chunk = stream.readline(_READ_LIMIT)
        if not chunk:
            return
        line_no += 1
        if len(chunk) >= _READ_LIMIT and not chunk.endswith(b"\n"):
            _skip_rest_of_line(stream)  # over-long: one error, the rest is never held
        parsed = parser.parse_line(line_no, chunk)
        if parsed is not None:
            yield parsed


class UploadScan:
    """What an upload holds, learnt while it is stored: its lines, device lines and format.

    Fed the file's bytes in chunks of any size. A device line is any line but a blank
    one, a comment or the CSV header: each gets an outcome when the file is worked.
    """

    def __init__(self, *, dsn_list: bool = False) -> None:
        self.lines = 0
        self.device_lines = 0
        self.format: UploadFormat | None = None
        self.header: str | None = None
        self._partial = b""
        self._parser = UploadParser(dsn_list=dsn_list)

    def feed(self, chunk: bytes) -> None:
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _READ_LIMIT:
            self._partial = self._partial[:_READ_LIMIT]  # an over-long line is one line
        for line in lines:
            self._line(line)

    def finish(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""

    def _line(self, line: bytes) -> None:
        self.lines += 1
        stripped = (line.removeprefix(_BOM) if self.lines == 1 else line).strip()
        if not stripped or stripped.startswith(b"#"):
            return
        if self.format is None:
            self._parser.parse_line(self.lines, line[:_READ_LIMIT])
            self.format, self.header = self._parser.format, self._parser.header_raw
            if self.header is not None:
                return
        self.device_lines += 1
