"""One OEM's storm never takes the service down for another (SPEC §11), on a real server.

OEM B (modules2) works a large junk upload and then hammers its action files, or signs
in with bad passwords as fast as it can; meanwhile OEM A (modules) reserves, manufactures
and searches. A sees no error and /healthz stays 200; B is told 429 AFS-429 with
Retry-After past its bounds. How much slower A gets is a benchmark figure
(bench/isolation.py), not a test.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import LiveServer, wait_for_action
from tests.world import PASSWORD, World

pytestmark = pytest.mark.slow

JUNK_LINES = 30_000
STORM_SECONDS = 8
PACE = 0.1  # seconds between two rounds of A's work


@pytest.fixture
def server(database_url: str, master_key_file: Path, tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        database_url,
        master_key_file,
        tmp_path,
        background_workers=True,
        extra_env={
            "DEVICEFACTORY_HEAVY_REQUESTS_PER_OEM": "2",
            "DEVICEFACTORY_BODY_IDLE_SECONDS": "1",
            # Low enough that the storm meets it however slowly a loaded machine hashes.
            "DEVICEFACTORY_SIGN_IN_PER_ADDRESS_PER_MINUTE": "10",
        },
    )
    live.start()
    yield live
    live.stop()


def _headers(server: LiveServer, email: str) -> dict[str, str]:
    body = {"user": {"email": email, "password": PASSWORD}}
    answer = httpx.post(f"{server.url}/users/sign_in.json", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"auth_token {answer.json()['access_token']}"}


def _junk_action(server: LiveServer, world: World, headers: dict[str, str]) -> int:
    content = "".join(
        f"2,1,2016/11/24 10:34:23 UTC,label,0,AY001MTP1,AC000W9{n:08d},{n:012x},m,s,j{n},\n"
        for n in range(JUNK_LINES)
    ).encode()
    answer = httpx.post(
        f"{server.url}/devicefactory/v1/factory_actions",
        files={"file": ("junk.log", content)},
        data={"type": "manufacture"},
        headers=headers,
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    action_id: int = answer.json()["factory_action"]["id"]
    world._tokens["mm"] = headers["Authorization"].split()[1]  # wait_for_action reads as mm
    wait_for_action(server, world, action_id, lambda a: a["status"] == "failure", timeout=180)
    return action_id


class TenantA:
    """OEM A's ordinary work in a loop: every answer that is not 2xx is an error."""

    def __init__(self, server: LiveServer, headers: dict[str, str]) -> None:
        self.server, self.headers = server, headers
        self.errors: list[str] = []
        self.calls = 0
        self.health: Counter[int] = Counter()
        self.stop = threading.Event()

    def work(self, worker: int) -> None:
        with httpx.Client(base_url=self.server.url, headers=self.headers, timeout=30) as client:
            n = worker * 100_000
            while not self.stop.is_set():
                n += 1
                reserved = client.post(
                    "/devicefactory/v1/devices/reserve", json={"model": "AY001MTP1", "count": 1}
                )
                self._check(reserved)
                if reserved.status_code == 200:
                    dsn = reserved.json()[0]["device"]["dsn"]
                    body = {
                        "model": "AY001MTP1",
                        "mac": f"{0xA00000 + n:012x}",
                        "hwsig": f"a-{n}",
                        "dom_at": "2016/11/24 10:34:23 UTC",
                    }
                    self._check(client.post(f"/devicefactory/v1/devices/{dsn}/manufacture", json=body))
                self._check(client.get("/devicefactory/v1/devices", params={"dsn": "AC000W0*", "limit": 20}))
                # A factory line's pace, not a flood: at most 2 x STORM_SECONDS / PACE reserves,
                # within the pool the tests fill, however fast the service answers.
                time.sleep(PACE)

    def watch_health(self) -> None:
        while not self.stop.is_set():
            try:
                self.health[httpx.get(f"{self.server.url}/healthz", timeout=10).status_code] += 1
            except httpx.HTTPError:
                self.health[0] += 1
            time.sleep(0.25)

    def _check(self, answer: httpx.Response) -> None:
        self.calls += 1
        if answer.status_code >= 300:
            self.errors.append(
                f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text[:200]}"
            )


def _storm(target: Callable[[], None], threads: int) -> list[threading.Thread]:
    started = [threading.Thread(target=target, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return started


def _run_with_a(
    server: LiveServer, world: World, storm: Callable[[threading.Event], list[threading.Thread]]
) -> TenantA:
    a = TenantA(server, _headers(server, world.emails["mm"]))
    workers = [threading.Thread(target=a.work, args=(i,), daemon=True) for i in range(2)]
    workers.append(threading.Thread(target=a.watch_health, daemon=True))
    for thread in workers:
        thread.start()
    stormers = storm(a.stop)
    time.sleep(STORM_SECONDS)
    a.stop.set()
    for thread in workers + stormers:
        thread.join(60)
    return a


def test_a_download_storm_of_one_oem_leaves_another_unharmed(
    server: LiveServer, world: World, pool: Callable[[int], None]
) -> None:
    pool(300)
    b_headers = _headers(server, world.emails["mm2"])
    action_id = _junk_action(server, world, b_headers)
    answers: Counter[str] = Counter()

    def download(stop: threading.Event) -> Callable[[], None]:
        def loop() -> None:
            kinds = ("failed", "log", "csv")
            n = 0
            with httpx.Client(base_url=server.url, headers=b_headers, timeout=60) as client:
                while not stop.is_set():
                    n += 1
                    url = f"/devicefactory/v1/factory_actions/{action_id}/files/{kinds[n % 3]}"
                    with client.stream("GET", url) as answer:
                        if answer.status_code == 429:
                            body = answer.read().decode()
                            proper = "AFS-429" in body and int(answer.headers["Retry-After"]) >= 1
                            answers["429" if proper else "improper 429"] += 1
                            continue
                        for _ in answer.iter_bytes():
                            if stop.is_set():
                                break
                        answers[str(answer.status_code)] += 1

        return loop

    a = _run_with_a(server, world, lambda stop: _storm(download(stop), 12))
    assert a.errors == [], a.errors[:5]
    assert a.calls > 0
    assert set(a.health) == {200}, a.health
    assert answers["429"] > 0, answers  # 12 downloads against a bound of 2
    assert set(answers) <= {"200", "429"}, answers


def test_a_download_whose_client_goes_frees_its_slot(
    server: LiveServer, world: World, pool: Callable[[int], None]
) -> None:
    b_headers = _headers(server, world.emails["mm2"])
    action_id = _junk_action(server, world, b_headers)
    url = f"{server.url}/devicefactory/v1/factory_actions/{action_id}/files/failed"
    for _ in range(3):  # more than the bound: each must have given its slot back
        with httpx.stream("GET", url, headers=b_headers, timeout=30) as answer:
            assert answer.status_code == 200
            next(answer.iter_bytes())  # the first page, then the client goes away
    deadline = time.monotonic() + 10
    while (status := httpx.get(url, headers=b_headers, timeout=30).status_code) == 429:
        assert time.monotonic() < deadline, "a gone client's download still holds its slot"
        time.sleep(0.2)
    assert status == 200


def test_a_sign_in_storm_leaves_another_oem_unharmed(
    server: LiveServer, world: World, pool: Callable[[int], None]
) -> None:
    pool(300)
    answers: Counter[int] = Counter()

    def guess(stop: threading.Event) -> Callable[[], None]:
        def loop() -> None:
            n = 0
            with httpx.Client(base_url=server.url, timeout=30) as client:
                while not stop.is_set():
                    n += 1
                    body = {
                        "user": {
                            "email": f"nobody{threading.get_ident()}-{n}@example.com",
                            "password": "guess-guess",
                        }
                    }
                    answers[client.post("/users/sign_in.json", json=body).status_code] += 1

        return loop

    a = _run_with_a(server, world, lambda stop: _storm(guess(stop), 6))
    assert a.errors == [], a.errors[:5]
    assert set(a.health) == {200}, a.health
    assert set(answers) <= {401, 429}, answers
    assert answers[429] > 0  # the address's bound


def _read_until_closed(connection: socket.socket) -> str:
    """The head and the body may come in separate packets; the server closes after a 408."""
    chunks: list[bytes] = []
    while chunk := connection.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_a_body_that_stops_arriving_is_408(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as connection:
        connection.sendall(
            b"POST /users/sign_in.json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"user"'
        )
        started = time.monotonic()
        answer = _read_until_closed(connection)
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "AFS-408" in answer
    assert time.monotonic() - started < 10


def test_the_database_and_keys_are_the_services_alone(tmp_path: Path) -> None:
    """Files the service makes are 0600 in 0700 directories, whatever the umask."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEVICEFACTORY_")}
    subprocess.run(
        [sys.executable, "-m", "devicefactory", "demo"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        preexec_fn=lambda: os.umask(0o022),
    )
    var = tmp_path / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    made = [p for p in var.rglob("*") if p.is_file()]
    assert any(p.name == "devicefactory.db" for p in made)
    for path in made:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
