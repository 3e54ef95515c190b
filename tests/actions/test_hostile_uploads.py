"""Malformed, oversized and hostile uploads each get a clear result, never a 500 (§7)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from tests.api import HEAD, action, assert_error, file_text, post_upload, reserve
from tests.world import World

V1 = "/devicefactory/v1"


def _upload(world: World, content: bytes | io.BufferedIOBase) -> httpx2.Response:
    """A validate-only manufacture upload by the module maker, as an opaque binary file."""
    return post_upload(
        world, "mm", content, validate=True, name="f.log", content_type="application/octet-stream"
    )


def _work(world: World, run_actions: Callable[[], int], content: bytes) -> dict[str, Any]:
    response = _upload(world, content)
    assert response.status_code == 202, response.text
    run_actions()
    body: dict[str, Any] = action(world, "mm", response.json()["factory_action"]["id"])["factory_action"]
    return body


def test_a_256_character_line_is_an_error_of_that_line(world: World, run_actions: Callable[[], int]) -> None:
    long_line = (HEAD + ",label,0,AY001MTP1,AC000W000000001,aabbccddeeff,m,s,h," + "x" * 300)[:256]
    result = _work(world, run_actions, b"# ok\n" + long_line.encode() + b"\n")
    assert result["progress"]["invalid"] == 1
    log = file_text(world, "mm", result["id"], "log")
    assert log.startswith("2,,AFS-600,")
    assert "255" in log.splitlines()[0]


def test_a_binary_file_gives_line_errors(world: World, run_actions: Callable[[], int]) -> None:
    result = _work(world, run_actions, os.urandom(20000) + b"\x00\x01\x02")
    assert result["status"] == "failure"
    assert result["progress"]["invalid"] >= 1
    assert result["progress"]["would_apply"] == 0


@pytest.mark.parametrize(
    "content", [b"", b"# only\n# comments\n\n   \n", b"dsn,mac,hwsig\n", b"\xef\xbb\xbf\r\n# x\r\n"]
)
@pytest.mark.parametrize("validate", [True, False])
def test_a_file_without_device_lines_is_refused_at_once(
    world: World, run_actions: Callable[[], int], content: bytes, validate: bool
) -> None:
    response = post_upload(world, "mm", content, validate=validate, name="f.log")
    assert_error(
        response, 422, "AFS-600", "There were some failures while processing: the file holds no device lines"
    )
    assert run_actions() == 0  # no action was made
    assert (
        world.client.get(f"{V1}/factory_actions", headers=world.headers("mm")).json()["factory_actions"] == []
    )


def test_more_device_lines_than_the_limit_are_refused(world: World) -> None:
    settings = world.client.app.state.settings  # type: ignore[attr-defined]
    limit = settings.max_upload_lines
    settings.max_upload_lines = 3
    try:
        line = f"{HEAD},label,0,AY001MTP1,AC000W000000001,aabbccddeeff,m,s,h,\n"
        at_limit = post_upload(world, "mm", ("# c\n" + line * 3).encode(), validate=True)
        assert at_limit.status_code == 202, at_limit.text
        over = post_upload(world, "mm", (line * 4).encode(), validate=True)
        assert_error(
            over,
            422,
            "AFS-600",
            "There were some failures while processing: the file holds more than 3 device lines",
        )
    finally:
        settings.max_upload_lines = limit


def test_crlf_and_bom_are_read_like_plain_lines(
    world: World, run_actions: Callable[[], int], pool: Callable[[int], None]
) -> None:
    pool(2)
    dsns = reserve(world, "mm", "AY001MTP1", 2)
    lines = [
        f"{HEAD},label,0,AY001MTP1,{dsns[0]},aabbccddee01,m,s,sig-a,",
        f"{HEAD},label,0,AY001MTP1,{dsns[1]},aabbccddee02,m,s,sig-b,",
    ]
    content = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    result = _work(world, run_actions, content)
    assert result["status"] == "success", file_text(world, "mm", result["id"], "log")
    assert result["progress"]["would_apply"] == 2  # validate: never "applied"
    assert "applied" not in result["progress"]


def test_a_60_mb_file_is_stored_and_worked_without_a_500(
    world: World, run_actions: Callable[[], int]
) -> None:
    line = (HEAD + ",pass,0,AY001MTP1,AC000W000000001,aabbccddeeff,m,s,h,comment\n").encode()
    content = line * (60 * 1024 * 1024 // len(line) + 1)
    assert len(content) > 60 * 1024 * 1024
    response = _upload(world, content)
    assert response.status_code == 202, response.text
    run_actions()
    result = action(world, "mm", response.json()["factory_action"]["id"])["factory_action"]
    assert result["status"] == "success"
    assert result["progress"]["skipped"] == content.count(b"\n")


def test_larger_than_the_limit_is_413(world: World) -> None:
    limit = world.client.app.state.settings.max_upload_bytes  # type: ignore[attr-defined]
    response = _upload(world, b"x" * (limit + 1))
    assert response.status_code == 413
    assert response.json()["error"][0]["code"] == "AFS-413"


@pytest.mark.parametrize(
    ("data", "files", "status", "code"),
    [
        ({"type": "reserve"}, True, 422, "AFS-600"),
        ({"type": ""}, True, 422, "AFS-600"),
        ({"type": "manufacture", "validate_only": "maybe"}, True, 422, "AFS-600"),
        ({"type": "manufacture"}, False, 422, "AFS-607"),
    ],
)
def test_bad_upload_forms(world: World, data: dict[str, str], files: bool, status: int, code: str) -> None:
    response = world.client.post(
        f"{V1}/factory_actions",
        files={"file": ("f.log", b"# x\n", "text/plain")} if files else {"other": ("x", b"y", "text/plain")},
        data=data,
        headers=world.headers("mm"),
    )
    assert response.status_code == status, response.text
    assert response.json()["error"][0]["code"] == code


def test_not_multipart_is_422(world: World) -> None:
    response = world.client.post(
        f"{V1}/factory_actions", json={"type": "manufacture"}, headers=world.headers("mm")
    )
    assert response.status_code == 422
    assert response.json()["error"][0]["code"] == "AFS-600"


@pytest.mark.parametrize(
    ("user", "type_"), [("mom", "manufacture"), ("som", "manufacture"), ("mm", "provision")]
)
def test_roles_that_may_not_upload_get_403(world: World, user: str, type_: str) -> None:
    response = world.client.post(
        f"{V1}/factory_actions",
        files={"file": ("f.log", b"# x\n", "text/plain")},
        data={"type": type_},
        headers=world.headers(user),
    )
    assert response.status_code == 403
