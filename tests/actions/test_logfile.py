"""Tests for devicefactory.actions.logfile (factory log-file and CSV upload parsing)."""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from devicefactory.actions.logfile import (
    FIELD_NAMES,
    MAX_LINE_LENGTH,
    STATUSES,
    LineError,
    LogRecord,
    ParsedLine,
    UploadFormat,
    UploadParser,
    iter_upload,
    parse_log_line,
)

# The AFS 2.2 spec's examples; the spec wraps them, each is one line.
V1 = (
    "2,1318462302,2011/10/12 23:31:42 UTC,pass,0,AY001MTP2,,222222222222,WD101a,p7,"
    "ffffff31-34314132-43025916,"
)
V2 = (
    "3,1401751270,2014/06/02 16:21:10 UTC,config,0,AY001MTC2,AC000W123456789,123456789abc,"
    "Type-YD,p8,ffffff31-34314132-43025999,comment - no commas,"
    "bc 1.9.4 05/29/14 17:53:48 ID c02104d,0dfc7900,ledevb,1,Acme"
)
V3 = (
    "3,1401751270,2014/06/02 16:21:10 UTC,config,0,AY001RTA,AC000W123456789,123456789abc,"
    "linux,p9,,devd 1.0 2014-05-22,0dfc7900,zbgw,1,Sprockley Sprockets"
)
V4 = (
    "4,1423526862,2015/02/10 00:07:42 UTC,label,0,AY001MTP1,TEST00W000009310,f064f08863f4,"
    "WM-N-BM-14A,16428876609579218157072732,3cfd9109-39fe1548-b1eb8d4f,ibhbnbsbjsc,"
    "oem_id_192635ec4034,oem_model_1664,1,odm_378,mfg_sw_version_1468,c1a68b737c64a4731d1b052b"
)
HEAD = "3,1401751270,2014/06/02 16:21:10 UTC,config,0,M,D,MAC,MM,SN,HW"
HEAD_FIELDS = {
    "dom_at": "2014/06/02 16:21:10 UTC",
    "model": "M",
    "dsn": "D",
    "mac": "MAC",
    "manuf_model": "MM",
    "manuf_sn": "SN",
    "hwsig": "HW",
}


def parse(data: bytes) -> list[ParsedLine]:
    return list(iter_upload(io.BytesIO(data)))


def record(line: str) -> LogRecord:
    parsed = parse_log_line(line)
    assert isinstance(parsed, LogRecord), parsed
    return parsed


def error(line: str) -> str:
    parsed = parse_log_line(line)
    assert isinstance(parsed, LineError), parsed
    return parsed.message


# --- the spec's examples, every field -------------------------------------------------


def test_spec_example_version_2() -> None:
    fields = {
        "model": "AY001MTP2",
        "dsn": "",
        "mac": "222222222222",
        "manuf_model": "WD101a",
        "manuf_sn": "p7",
        "hwsig": "ffffff31-34314132-43025916",
        "dom_at": "2011/10/12 23:31:42 UTC",
    }
    expected = LogRecord(1, V1, 2, "pass", 0, fields, "")
    assert parse_log_line(V1) == expected
    assert parse(V1.encode()) == [expected]


def test_spec_example_version_3_comment_then_sw_version() -> None:
    # 17 fields: under "X, oem_id, oem_model, A, odm, SW" field 15 would be A and holds
    # "ledevb", so "X, SW, oem_id, oem_model, A, odm" (field 16 = "1") is the layout.
    fields = {
        "model": "AY001MTC2",
        "dsn": "AC000W123456789",
        "mac": "123456789abc",
        "manuf_model": "Type-YD",
        "manuf_sn": "p8",
        "hwsig": "ffffff31-34314132-43025999",
        "dom_at": "2014/06/02 16:21:10 UTC",
        "module_sw_version": "bc 1.9.4 05/29/14 17:53:48 ID c02104d",
        "oem_id": "0dfc7900",
        "oem_model": "ledevb",
        "ads_connect_flag": "1",
        "odm": "Acme",
    }
    assert record(V2) == LogRecord(1, V2, 3, "config", 0, fields, "comment - no commas")


def test_spec_example_version_3_gateway_without_comment() -> None:
    # 16 fields, empty hwsig: "SW, oem_id, oem_model, A, odm" (field 14 is "zbgw", not A).
    fields = {
        "model": "AY001RTA",
        "dsn": "AC000W123456789",
        "mac": "123456789abc",
        "manuf_model": "linux",
        "manuf_sn": "p9",
        "hwsig": "",
        "dom_at": "2014/06/02 16:21:10 UTC",
        "module_sw_version": "devd 1.0 2014-05-22",
        "oem_id": "0dfc7900",
        "oem_model": "zbgw",
        "ads_connect_flag": "1",
        "odm": "Sprockley Sprockets",
    }
    assert record(V3) == LogRecord(1, V3, 3, "config", 0, fields, "")


def test_spec_example_version_4() -> None:
    fields = {
        "model": "AY001MTP1",
        "dsn": "TEST00W000009310",
        "mac": "f064f08863f4",
        "manuf_model": "WM-N-BM-14A",
        "manuf_sn": "16428876609579218157072732",
        "hwsig": "3cfd9109-39fe1548-b1eb8d4f",
        "dom_at": "2015/02/10 00:07:42 UTC",
        "oem_id": "oem_id_192635ec4034",
        "oem_model": "oem_model_1664",
        "ads_connect_flag": "1",
        "odm": "odm_378",
        "module_sw_version": "mfg_sw_version_1468",
        "wifi_setup_key": "c1a68b737c64a4731d1b052b",
    }
    assert record(V4) == LogRecord(1, V4, 4, "label", 0, fields, "ibhbnbsbjsc")


# --- the other layouts and their tie-breaking -------------------------------------------


def test_version_2_without_comment() -> None:
    line = "2,1,2011/10/12 23:31:42 UTC,fail,17,M,D,MAC,MM,SN,HW"
    parsed = record(line)
    assert (parsed.version, parsed.status, parsed.err_code, parsed.extra) == (2, "fail", 17, "")
    assert parsed.fields == HEAD_FIELDS | {"dom_at": "2011/10/12 23:31:42 UTC"}


def test_version_3_comment_then_oem() -> None:
    parsed = record(f"{HEAD},note,OID,OMODEL,0,ODM,SW 1.0")
    assert parsed.extra == "note"
    assert parsed.fields == HEAD_FIELDS | {
        "oem_id": "OID",
        "oem_model": "OMODEL",
        "ads_connect_flag": "0",
        "odm": "ODM",
        "module_sw_version": "SW 1.0",
    }


def test_version_3_oem_then_sw_version() -> None:
    parsed = record(f"{HEAD},OID,OMODEL,,ODM,SW 1.0")
    assert parsed.extra == ""
    assert parsed.fields == HEAD_FIELDS | {
        "oem_id": "OID",
        "oem_model": "OMODEL",
        "ads_connect_flag": "",
        "odm": "ODM",
        "module_sw_version": "SW 1.0",
    }


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        # 17 fields, both field 15 and field 16 could be A: the first listed layout wins.
        ("x,OID,OM,1,0,SW", {"oem_id": "OID", "oem_model": "OM", "ads_connect_flag": "1"}),
        ("x,OID,OM,,1,SW", {"oem_id": "OID", "ads_connect_flag": "", "odm": "1"}),
        # 16 fields, both field 14 and field 15 could be A.
        ("OID,OM,0,,SW", {"oem_id": "OID", "oem_model": "OM", "ads_connect_flag": "0"}),
    ],
)
def test_tie_goes_to_first_listed_layout(tail: str, expected: dict[str, str]) -> None:
    parsed = record(f"{HEAD},{tail}")
    assert parsed.fields["module_sw_version"] == "SW"
    assert parsed.fields.items() >= expected.items()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"{HEAD},x,OID,OMODEL,yes,ODM,SW", "needs ads_connect_flag (0, 1 or empty) at field 15"),
        (f"{HEAD},OID,OMODEL,yes,ODM,SW", "version 3 with 16 fields needs ads_connect_flag"),
        (V4.replace(",1,odm_378", ",true,odm_378"), "version 4 with 18 fields needs"),
    ],
)
def test_no_position_holds_the_flag(line: str, message: str) -> None:
    assert message in error(line)


def test_flag_error_names_both_positions() -> None:
    assert error(f"{HEAD},x,OID,OMODEL,yes,ODM,SW") == (
        "version 3 with 17 fields needs ads_connect_flag (0, 1 or empty) at field 15 or 16"
    )


@pytest.mark.parametrize(
    ("version", "count", "message"),
    [
        ("2", 14, "version 2 has 11 or 12 fields, this line has 14"),
        ("2", 10, "version 2 has 11 or 12 fields, this line has 10"),
        ("3", 14, "version 3 has 16 or 17 fields, this line has 14"),
        ("3", 18, "version 3 has 16 or 17 fields, this line has 18"),
        ("4", 17, "version 4 has 18 fields, this line has 17"),
    ],
)
def test_line_fitting_no_layout(version: str, count: int, message: str) -> None:
    line = ",".join([version, "1", "t", "pass", "0"] + ["v"] * (count - 5))
    assert error(line) == message


@pytest.mark.parametrize(
    ("first", "message"),
    [
        ("7", "unknown log version 7; expected 2, 3 or 4"),
        ("", "unknown log version (empty); expected 2, 3 or 4"),
        ("v2", "unknown log version v2; expected 2, 3 or 4"),
    ],
)
def test_unknown_version(first: str, message: str) -> None:
    assert error(first + V1[1:]) == message


@pytest.mark.parametrize("status", STATUSES)
def test_every_status_is_reported(status: str) -> None:
    assert record(V1.replace(",pass,", f",{status},")).status == status


def test_bad_status() -> None:
    message = error(V1.replace(",pass,", ",PASSED,"))
    assert message.startswith("unknown status 'PASSED'; expected pass, fail, label")


@pytest.mark.parametrize(("code", "value"), [("", 0), ("0", 0), ("42", 42), ("-3", -3)])
def test_err_code(code: str, value: int) -> None:
    assert record(V1.replace(",pass,0,", f",fail,{code},")).err_code == value


@pytest.mark.parametrize("code", ["x1", "1.5", "0x10", "1_000"])
def test_bad_err_code(code: str) -> None:
    assert error(V1.replace(",pass,0,", f",fail,{code},")) == f"err_code {code!r} is not an integer"


def test_values_are_stripped_and_empty_kept() -> None:
    parsed = record(" 2 , 1 , 2011/10/12 23:31:42 UTC ,  pass , 0 , M ,, MAC ,MM , SN , HW , c ")
    assert parsed.fields == HEAD_FIELDS | {"dom_at": "2011/10/12 23:31:42 UTC", "dsn": ""}
    assert (parsed.version, parsed.status, parsed.extra) == (2, "pass", "c")


def test_parse_log_line_drops_the_terminator_and_does_no_csv_detection() -> None:
    assert record(V1 + "\r\n").raw == V1
    assert error("dsn,mac") == "unknown log version dsn; expected 2, 3 or 4"


# --- line length and text checks --------------------------------------------------------


def test_line_of_255_characters_is_accepted_and_256_is_not() -> None:
    line = V1 + "x" * (MAX_LINE_LENGTH - len(V1))
    assert record(line).extra == "x" * (MAX_LINE_LENGTH - len(V1))
    [parsed] = parse((line + "y\n").encode())
    assert parsed == LineError(1, line, "line is longer than 255 characters")


def test_length_counts_characters_not_bytes() -> None:
    line = V1 + "é" * (MAX_LINE_LENGTH - len(V1))  # 2 bytes each in UTF-8
    [parsed] = parse(line.encode())
    assert isinstance(parsed, LogRecord)
    assert parsed.extra.startswith("éé")


@pytest.mark.parametrize(
    "bad",
    [b"\x00", b"\t", b"\x7f", "\u0085".encode(), b"\xff", b"\xc3", b"\xed\xa0\x80", b"\r"],
)
def test_line_that_is_not_text(bad: bytes) -> None:
    [parsed] = parse(V1.encode()[:20] + bad + V1.encode()[20:] + b"\n")
    assert isinstance(parsed, LineError)
    assert parsed.message.startswith("line is not text")
    assert parsed.line_no == 1
    assert len(parsed.raw) <= MAX_LINE_LENGTH
    assert parsed.raw.isprintable()  # safe to write to the failed-lines file


def test_binary_file_gives_errors_not_exceptions() -> None:
    data = random.Random(7).randbytes(200_000) + b"\x00" * 1000 + b"\n\x00\n"
    results = parse(data)
    assert results
    assert all(isinstance(r, LineError) for r in results)
    assert all(len(r.raw) <= MAX_LINE_LENGTH for r in results)


class _RecordingStream(io.BytesIO):
    """Remembers the largest chunk readline() handed out."""

    largest = 0

    def readline(self, size: int | None = -1, /) -> bytes:
        chunk = super().readline(size)
        self.largest = max(self.largest, len(chunk))
        return chunk


def test_one_megabyte_without_newline_is_one_error_in_bounded_memory() -> None:
    stream = _RecordingStream(b"A" * 1_000_000)
    tracemalloc.start()
    try:
        results = list(iter_upload(stream))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert results == [LineError(1, "A" * 255, "line is longer than 255 characters")]
    assert stream.largest <= 4096
    assert peak < 100_000


def test_over_long_line_is_skipped_and_numbering_goes_on() -> None:
    data = b"\x00" * 1_000_000 + b"\r\n" + V1.encode() + b"\n"
    first, second = parse(data)
    assert isinstance(first, LineError)
    assert first.line_no == 1
    assert isinstance(second, LogRecord)
    assert second.line_no == 2


# --- files: blank, comments, line ends, BOM, numbering ---------------------------------


def test_empty_file() -> None:
    assert parse(b"") == []


def test_file_of_comments_and_blank_lines() -> None:
    parser = UploadParser()
    for n, raw in enumerate([b"# made by line 3\n", b"\n", b"   \r\n", b"  # indented\n"], 1):
        assert parser.parse_line(n, raw) is None
    assert parser.format is None
    assert parse(b"# one\n\n#two\n  \n") == []


def test_line_numbers_count_comments_and_blank_lines() -> None:
    data = f"# header comment\n\n{V1}\n  \n# {V2}\n{V3}\nbad\n".encode()
    results = parse(data)
    assert [(r.line_no, type(r)) for r in results] == [
        (3, LogRecord),
        (6, LogRecord),
        (7, LineError),
    ]


def test_crlf_and_lone_cr_at_the_end() -> None:
    results = parse(f"{V1}\r\n{V3}\r\n{V4}\r".encode())
    assert [(r.line_no, r.raw) for r in results] == [(1, V1), (2, V3), (3, V4)]
    assert all(isinstance(r, LogRecord) for r in results)


def test_byte_order_mark_dropped_only_at_the_start() -> None:
    bom = "\ufeff"
    first, second = parse(f"{bom}{V1}\n{bom}{V1}\n".encode())
    assert first == LogRecord(1, V1, 2, "pass", 0, record(V1).fields, "")
    assert isinstance(second, LineError)
    assert second.message.startswith("unknown log version")


def test_log_title_line_is_one_bad_line_not_a_csv_header() -> None:
    title = "version,time,timestamp,status,err_code,model,dsn,mac,mfg_model,mfg_sn,hwsig"
    first, second = parse(f"{title}\n{V1}\n".encode())
    assert first == LineError(1, title, "unknown log version version; expected 2, 3 or 4")
    assert isinstance(second, LogRecord)


# --- CSV uploads -------------------------------------------------------------------------


def test_csv_with_quoted_fields() -> None:
    header = 'DSN, mac,"manuf_model",model'
    data = f'# exported\n{header}\nAC1,aa, "WD,101",AY1\r\n\n"AC2",bb,,AY2\n'
    parser = UploadParser()
    results = [parser.parse_line(n, raw) for n, raw in enumerate(data.encode().splitlines(), 1)]
    assert parser.format is UploadFormat.CSV
    assert parser.header == ["dsn", "mac", "manuf_model", "model"]
    assert parser.header_raw == header
    row1 = {"dsn": "AC1", "mac": "aa", "manuf_model": "WD,101", "model": "AY1"}
    row2 = {"dsn": "AC2", "mac": "bb", "manuf_model": "", "model": "AY2"}
    assert results == [
        None,
        None,
        LogRecord(3, 'AC1,aa, "WD,101",AY1', None, None, 0, row1),
        None,
        LogRecord(5, '"AC2",bb,,AY2', None, None, 0, row2),
    ]


def test_csv_every_api_field_and_bom() -> None:
    header = ",".join(FIELD_NAMES)
    row = ",".join(f"v{i}" for i in range(len(FIELD_NAMES)))
    [parsed] = parse(f"\ufeff{header}\r\n{row}\r\n".encode())
    assert isinstance(parsed, LogRecord)
    assert parsed.fields == {name: f"v{i}" for i, name in enumerate(FIELD_NAMES)}
    assert (parsed.version, parsed.status, parsed.err_code, parsed.line_no) == (None, None, 0, 2)


def test_csv_row_of_wrong_length_and_bad_quoting() -> None:
    results = parse(b'dsn,mac\nAC1\nAC2,aa,x\nAC3,"aa\nAC4,aa\n')
    assert [(r.line_no, getattr(r, "message", None)) for r in results] == [
        (2, "CSV row has 1 fields, the header has 2"),
        (3, "CSV row has 3 fields, the header has 2"),
        (4, "line is not a valid CSV row"),
        (5, None),
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("dsn,mac,colour,size", "unknown CSV column(s) 'colour', 'size'; known: dsn, model"),
        ("dsn,mac,dsn", "CSV header repeats a column"),
        ("mac,model", "CSV header has no dsn column"),
    ],
)
def test_bad_csv_header_stops_the_file(header: str, message: str) -> None:
    data = f"\n{header}\nAC1,aa,x,y\nAC2,bb\n\x00\n".encode()
    [parsed] = parse(data)
    assert isinstance(parsed, LineError)
    assert (parsed.line_no, parsed.raw) == (2, header)
    assert parsed.message.startswith(message)
    parser = UploadParser()
    assert parser.parse_line(1, header.encode()) == LineError(1, header, parsed.message)
    assert parser.stopped
    assert parser.parse_line(2, b"AC1,aa") is None


def test_header_after_log_lines_is_a_bad_log_line() -> None:
    _, second = parse(f"{V1}\ndsn,mac\n".encode())
    assert second == LineError(2, "dsn,mac", "unknown log version dsn; expected 2, 3 or 4")


# --- properties ---------------------------------------------------------------------------


def _check_outcomes(data: bytes) -> list[ParsedLine]:
    results = parse(data)
    assert all(isinstance(r, LogRecord | LineError) for r in results)
    numbers = [r.line_no for r in results]
    assert numbers == sorted(set(numbers))
    assert len(results) <= data.count(b"\n") + 1
    for r in results:
        assert len(r.raw) <= MAX_LINE_LENGTH
        assert "\n" not in r.raw
        assert "\r" not in r.raw
    return results


@settings(database=None)
@given(st.binary())
def test_any_bytes(data: bytes) -> None:
    _check_outcomes(data)


@settings(database=None)
@given(st.lists(st.text()), st.sampled_from(["\n", "\r\n"]))
def test_any_text_lines(lines: list[str], end: str) -> None:
    _check_outcomes(end.join(lines).encode("utf-8", "surrogatepass"))


_OEM = ("oem_id", "oem_model", "ads_connect_flag", "odm")
_SW = "module_sw_version"
# Test-side copy of the contract's table: (version, fields after hwsig), in spec order.
_LAYOUTS: list[tuple[str, tuple[str, ...]]] = [
    ("2", ("extra",)),
    ("2", ()),
    ("3", ("extra", *_OEM, _SW)),
    ("3", ("extra", _SW, *_OEM)),
    ("3", (*_OEM, _SW)),
    ("3", (_SW, *_OEM)),
    ("4", ("extra", *_OEM, _SW, "wifi_setup_key")),
]
_HEAD_NAMES = ("model", "dsn", "mac", "manuf_model", "manuf_sn", "hwsig")
_VALUE = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), exclude_characters=","),
    max_size=12,
).map(str.strip)


def _earlier_flag_positions(index: int) -> set[int]:
    """Where an earlier layout of the same version and length keeps A (it must not fit)."""
    version, tail = _LAYOUTS[index]
    return {
        11 + other.index("ads_connect_flag")
        for v, other in _LAYOUTS[:index]
        if v == version and len(other) == len(tail) and "ads_connect_flag" in other
    }


@st.composite
def valid_lines(draw: st.DrawFn) -> tuple[str, dict[str, str], str, str, int]:
    index = draw(st.integers(0, len(_LAYOUTS) - 1))
    version, tail = _LAYOUTS[index]
    status = draw(st.sampled_from(STATUSES))
    code = draw(st.integers(-999, 999))
    head = {name: draw(_VALUE) for name in ("time", "dom_at", *_HEAD_NAMES)}
    values = {
        name: draw(st.sampled_from(["0", "1", ""]) if name == "ads_connect_flag" else _VALUE) for name in tail
    }
    cells = [version, head["time"], head["dom_at"], status, str(code)]
    cells += [head[name] for name in _HEAD_NAMES] + [values[name] for name in tail]
    assume(all(cells[i] not in ("0", "1", "") for i in _earlier_flag_positions(index)))
    pad = draw(st.sampled_from(["", " "]))
    line = ",".join(f"{pad}{cell}{pad}" for cell in cells)
    assume(len(line) <= MAX_LINE_LENGTH)
    fields = {name: head[name] for name in ("dom_at", *_HEAD_NAMES)} | values
    extra = fields.pop("extra", "")
    return line, fields, extra, status, code


@settings(database=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.lists(valid_lines(), min_size=1, max_size=5), st.sampled_from(["\n", "\r\n"]))
def test_valid_lines_round_trip(lines: list[tuple[str, dict[str, str], str, str, int]], end: str) -> None:
    results = parse(end.join(line for line, *_ in lines).encode())
    assert len(results) == len(lines)
    for n, (parsed, (line, fields, extra, status, code)) in enumerate(zip(results, lines, strict=True), 1):
        assert parsed == LogRecord(n, line, int(line.strip()[0]), status, code, fields, extra)


def _records(results: Iterator[ParsedLine]) -> int:
    return sum(isinstance(r, LogRecord) for r in results)


def test_many_lines_stream() -> None:
    data = "\n".join([V1, V2, V3, V4] * 2500).encode()
    assert _records(iter_upload(io.BytesIO(data))) == 10_000
