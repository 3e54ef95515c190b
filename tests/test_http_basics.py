"""Errors in the AFS shape for every kind of bad request; health, metrics, docs, request ids."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.world import World


def assert_afs_error(response: object, status: int, code: str) -> None:
    assert response.status_code == status  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    assert body["error"][0]["code"] == code
    assert isinstance(body["error"][0]["message"], str)
    if code == "AFS-600":
        assert body["error"][0]["message"].startswith("There were some failures while processing: "), body
    assert "detail" not in body


def test_unknown_route_is_404_in_afs_shape(client: TestClient) -> None:
    assert_afs_error(client.get("/devicefactory/v1/nothing-here"), 404, "AFS-404")


def test_wrong_method_is_405_in_afs_shape(client: TestClient) -> None:
    assert_afs_error(client.delete("/users/sign_in.json"), 405, "AFS-405")


@pytest.mark.parametrize("body", [b"{", b"null", b"42", b'"text"', b"\xff\xfe", b"[1, 2]", b""])
@pytest.mark.parametrize(
    "path",
    [
        "/devicefactory/v1/admin/oems",
        "/devicefactory/v1/devices/reserve",
        "/devicefactory/v1/devices/AC000W000000001/manufacture",
        "/devicefactory/v1/devices/AC000W000000001/provision",
        "/devicefactory/v1/devices/AC000W000000001/verify",
        "/users/sign_in.json",
    ],
)
def test_malformed_json_is_422_afs_600_in_the_seeds_form(world: World, body: bytes, path: str) -> None:
    user = "ayla" if "admin" in path else "mm"
    response = world.client.post(
        path, content=body, headers={**world.headers(user), "Content-Type": "application/json"}
    )
    assert_afs_error(response, 422, "AFS-600")


def test_wrong_types_are_422_not_500(world: World) -> None:
    response = world.client.post(
        "/devicefactory/v1/admin/oems",
        json={"name": ["x"], "module_manufacturer": "yes"},
        headers=world.headers("ayla"),
    )
    assert_afs_error(response, 422, "AFS-600")
    response = world.client.post(
        "/devicefactory/v1/admin/oems",
        json={"name": "ok", "reservation_limit": "many"},
        headers=world.headers("ayla"),
    )
    assert_afs_error(response, 422, "AFS-600")


def test_oversized_body_is_413_in_afs_shape(world: World) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = world.client.post(
        "/devicefactory/v1/admin/oems",
        content=big,
        headers={**world.headers("ayla"), "Content-Type": "application/json"},
    )
    assert_afs_error(response, 413, "AFS-413")


def test_oversized_chunked_body_is_413(world: World) -> None:
    def chunks() -> object:
        for _ in range(40):
            yield b"x" * 65536

    response = world.client.post(
        "/devicefactory/v1/admin/oems",
        content=chunks(),
        headers={**world.headers("ayla"), "Content-Type": "application/json"},
    )
    assert_afs_error(response, 413, "AFS-413")


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_metrics_are_prometheus_text(client: TestClient) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'devicefactory_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in response.text
    )
    assert "devicefactory_http_request_duration_seconds_bucket" in response.text


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/users/sign_in" in spec["paths"]


def test_every_response_has_a_request_id(client: TestClient) -> None:
    first = client.get("/healthz").headers["x-request-id"]
    second = client.get("/nope").headers["x-request-id"]
    assert first
    assert second
    assert first != second
    echoed = client.get("/healthz", headers={"X-Request-Id": "factory-line-7.42"})
    assert echoed.headers["x-request-id"] == "factory-line-7.42"
    hostile = client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


def test_request_ids_are_unique_and_differ_between_processes() -> None:
    """Made without a system call per request (a prefix per process and a counter), they
    must still never repeat, within a process or across processes (the audit keeps them)."""
    import re
    import subprocess
    import sys

    from devicefactory.http.middleware import new_request_id

    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch("[0-9a-f]{32}", one) for one in ids)
    code = "from devicefactory.http.middleware import new_request_id as n; print(n(), n())"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(other) == 2
    assert other[0] != other[1]
    assert {one[:16] for one in other} != {ids[0][:16]}  # another process, another prefix

    # A forked worker (gunicorn-style) inherits the module: it must not inherit the prefix.
    import os

    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only writes and leaves
        os.write(writer, new_request_id().encode())
        os._exit(0)
    os.close(writer)
    forked = os.read(reader, 64).decode()
    os.close(reader)
    os.waitpid(child, 0)
    assert re.fullmatch("[0-9a-f]{32}", forked)
    assert forked[:16] != ids[0][:16]
    assert new_request_id()[:16] == ids[0][:16]  # the parent keeps its own


def test_request_id_is_in_log_lines(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    from devicefactory.logs import RequestIdLogFilter

    caplog.handler.addFilter(RequestIdLogFilter())
    caplog.set_level("INFO", logger="devicefactory.web")
    client.get("/healthz", headers={"X-Request-Id": "abc123"})
    records = [r for r in caplog.records if r.name == "devicefactory.web"]
    assert any(getattr(r, "request_id", None) == "abc123" for r in records)
