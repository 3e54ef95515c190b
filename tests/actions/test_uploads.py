"""Factory-log uploads end to end: every per-line outcome, validate and submit, re-upload (§6, §7)."""

from __future__ import annotations

from collections.abc import Callable

from tests.api import action, device, file_text, log_line, manufacture, reserve, upload
from tests.world import World


def test_every_outcome_in_validate_and_submit_then_reupload(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(6)
    dsns = reserve(world, "mm", "AY001MTP1", 6)
    # Already applied (for the identical line) and already manufactured differently (conflict).
    for dsn, mac, hwsig in [(dsns[1], "000000000002", "sig-2"), (dsns[2], "000000000003", "sig-3")]:
        made = manufacture(
            world,
            dsn,
            {
                "model": "AY001MTP1",
                "mac": mac,
                "hwsig": hwsig,
                "dom_at": "2016/11/24 10:34:23 UTC",
                "manuf_model": "WD101a",
                "manuf_sn": "p7",
            },
        )
        assert made.status_code == 200, made.text
    lines = [
        "# a comment",
        log_line(dsns[0], "000000000001", "sig-1"),  # 2 applied
        log_line(dsns[1], "000000000002", "sig-2", status="config"),  # 3 identical
        log_line(dsns[2], "0000000000ff", "sig-3"),  # 4 conflict (mac differs)
        log_line(dsns[3], "zz", "sig-4"),  # 5 invalid (bad mac)
        log_line(dsns[4], "000000000005", "sig-5", status="pass"),  # 6 skipped (status)
        log_line(dsns[5], "000000000006", "sig-6", err="3"),  # 7 skipped (err_code)
        log_line("AC000W999999999", "000000000007", "sig-7"),  # 8 invalid (unknown DSN)
        "",
    ]
    content = "\n".join(lines).encode()
    expected = {
        2: "applied",
        3: "identical",
        4: "conflict",
        5: "invalid",
        6: "skipped",
        7: "skipped",
        8: "invalid",
    }

    validated = upload(world, "mm", content, validate=True)
    assert validated["type"] == "validate"
    assert validated["status"] == "pending"
    assert run_actions() == 1
    body = action(world, "mm", validated["id"])
    assert body["factory_action"]["status"] == "failure"
    progress = body["factory_action"]["progress"]
    assert progress == {
        "lines_total": 8,
        "lines_done": 8,
        "would_apply": 1,
        "identical": 1,
        "conflict": 1,
        "invalid": 2,
        "skipped": 2,
    }
    assert device(world, dsns[0], "mm")["status"] == "reserved"
    # Each row: the device's model and its status after the action (a validate changed
    # nothing), and the outcome; an unknown DSN has neither model nor status.
    csv_text = file_text(world, "mm", validated["id"], "csv")
    assert csv_text.splitlines() == [
        "dsn,model,status,result,error_code",
        f"{dsns[0]},AY001MTP1,reserved,would apply,",
        f"{dsns[1]},AY001MTP1,manufactured,identical,",
        f"{dsns[2]},AY001MTP1,manufactured,conflict,AFS-600",
        f"{dsns[3]},AY001MTP1,reserved,invalid,AFS-600",
        f"{dsns[4]},AY001MTP1,reserved,skipped,",
        f"{dsns[5]},AY001MTP1,reserved,skipped,",
        "AC000W999999999,,,invalid,AFS-404",
    ]
    log_text = file_text(world, "mm", validated["id"], "log")
    assert "applied" not in csv_text + log_text
    log_lines = log_text.splitlines()
    assert [int(entry.split(",")[0]) for entry in log_lines[:-1]] == [4, 5, 8]
    assert "AFS-404" in log_lines[2]
    assert log_lines[-1] == (
        "# summary: validate failure: 8 of 8 lines, 1 would apply, 1 identical, 1 conflict, "
        "2 invalid, 2 skipped"
    )

    submitted = upload(world, "mm", content)
    run_actions()
    result = action(world, "mm", submitted["id"])["factory_action"]
    assert result["status"] == "failure"
    assert result["progress"]["applied"] == 1
    assert file_text(world, "mm", submitted["id"], "csv").splitlines()[1:3] == [
        f"{dsns[0]},AY001MTP1,manufactured,applied,",
        f"{dsns[1]},AY001MTP1,manufactured,identical,",
    ]
    stored = device(world, dsns[0], "mm")
    assert (stored["status"], stored["mac"], stored["hwsig"]) == ("manufactured", "000000000001", "sig-1")
    failed = file_text(world, "mm", submitted["id"], "failed").splitlines()
    assert failed == [lines[3], lines[4], lines[7]]
    outcomes = _line_outcomes(world, submitted["id"])
    assert outcomes == {n: expected[n] for n in expected if expected[n] != "skipped"} | dict.fromkeys(
        (6, 7), "skipped"
    )

    # Fix the bad lines (the conflicting one now matches, the invalid mac is corrected) and re-upload.
    lines[3] = log_line(dsns[2], "000000000003", "sig-3")
    lines[4] = log_line(dsns[3], "000000000004", "sig-4")
    lines[7] = "# unknown DSN removed"
    again = upload(world, "mm", "\n".join(lines).encode())
    run_actions()
    final = action(world, "mm", again["id"])["factory_action"]
    assert final["status"] == "success"
    assert (final["progress"]["applied"], final["progress"]["identical"]) == (1, 3)


def _line_outcomes(world: World, action_id: int) -> dict[int, str]:
    from sqlalchemy import select

    from devicefactory.tables.actions import ActionLine

    with world.client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return {
            row.line_no: row.outcome
            for row in session.scalars(select(ActionLine).where(ActionLine.action_id == action_id))
        }


def test_a_line_that_fits_no_layout_is_reported_with_its_dsn(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    pool(1)
    (dsn,) = reserve(world, "mm", "AY001MTP1", 1)
    too_many = log_line(dsn, "000000000001", "sig-1") + ",x,y"  # 14 fields for version 2
    content = "\n".join(["# header", too_many, "7,1,2,label,0,AY001MTP1,AC000W000000042"]).encode()
    result = upload(world, "mm", content, validate=True)
    run_actions()
    log = file_text(world, "mm", result["id"], "log").splitlines()
    assert log[0] == (
        f"2,{dsn},AFS-600,There were some failures while processing: "
        "version 2 has 11 or 12 fields, this line has 14"
    )
    assert log[1].startswith(
        "3,AC000W000000042,AFS-600,There were some failures while processing: unknown log"
    )
    csv_rows = file_text(world, "mm", result["id"], "csv").splitlines()
    assert csv_rows[1:] == [f"{dsn},AY001MTP1,reserved,invalid,AFS-600", "AC000W000000042,,,invalid,AFS-600"]


def test_cells_a_spreadsheet_would_run_are_quoted(
    world: World, pool: Callable[[int], None], run_actions: Callable[[], int]
) -> None:
    """A DSN or message starting with = + - @ tab or CR is written with a leading ' (§11)."""
    hostile = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)"]
    content = "".join(f"dsn,mac\n{cell},aabbccddeeff\n" for cell in hostile[:1]).encode()
    content += "".join(f"{cell},aabbccddeeff\n" for cell in hostile[1:]).encode()
    result = upload(world, "mm", content, validate=True)
    run_actions()
    csv_text = file_text(world, "mm", result["id"], "csv")
    log_text = file_text(world, "mm", result["id"], "log")
    for cell in hostile:
        quoted = "'" + cell
        assert quoted in csv_text or f'"{quoted}"' in csv_text, (cell, csv_text)
        assert f",{quoted}," in log_text, (cell, log_text)
    for line in csv_text.splitlines()[1:] + log_text.splitlines()[:-1]:
        for cell in line.split(","):
            assert not cell.lstrip('"').startswith(("=", "+", "-", "@", "\t", "\r")), line
