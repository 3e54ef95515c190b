"""Webhooks (SPEC §13): an OEM::Admin registers receivers for its OEM; events are written to
the outbox with the change that causes them, and the sender POSTs them signed to a real
receiver on 127.0.0.1, retrying failures with exponential backoff, in order per webhook.

The sender is driven here on the real clock (``run_once``); the service's frozen clock only
stamps the events, never schedules them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from tests.api import (
    WHITE_BOX,
    assert_error,
    assert_same_as_unknown,
    log_line,
    ok,
    provision,
    reservation,
    reserve,
    upload,
)
from tests.world import World

from devicefactory.config import Settings
from devicefactory.tables.webhooks import WebhookDelivery
from devicefactory.webhooks.delivery import WebhookSender
from devicefactory.webhooks.outbox import Backoff

HOOKS = "/devicefactory/v1/webhooks"
SECRET = "s3cret-s3cret-s3cret"
ALL_EVENTS = ["action.finished", "devices.reserved", "device.factory_reset"]
Pool = Callable[[int], None]


# --- a real receiver ----------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers the next code of
    ``answers`` (200 once they run out)."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    answers: queue.SimpleQueue[int] = field(default_factory=queue.SimpleQueue)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def answer(self, *codes: int) -> None:
        for code in codes:
            self.answers.put(code)

    def next_code(self) -> int:
        try:
            return self.answers.get_nowait()
        except queue.Empty:
            return 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hook = holder[0]
            hook.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
            self.send_response(hook.next_code())
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a dead receiver)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


# --- the sender ---------------------------------------------------------------------------


def webhook_settings(settings: Settings, **overrides: Any) -> Settings:
    values = {
        "webhook_backoff_seconds": 0.2,
        "webhook_max_backoff_seconds": 5,
        "webhook_timeout_seconds": 1,
        "webhook_poll_seconds": 0.05,
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
def sender(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[WebhookSender]:
    sender = WebhookSender(session_factory, webhook_settings(settings))
    yield sender
    sender.close()


def send_until(sender: WebhookSender, done: Callable[[], bool], timeout: float = 15) -> None:
    """Run the sender (as its worker thread would) until ``done()``."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the sender did not get there in time"
        if not sender.run_once():
            time.sleep(0.02)


def send_all(sender: WebhookSender) -> None:
    """Send everything that is due now."""
    while sender.run_once():
        pass


# --- the API ------------------------------------------------------------------------------


def register(
    world: World, user: str, url: str, events: list[str] | None = None, secret: str = SECRET
) -> dict[str, Any]:
    body = {"url": url, "events": events or ALL_EVENTS, "secret": secret}
    response = world.client.post(HOOKS, json=body, headers=world.headers(user))
    assert response.status_code == 201, response.text
    hook: dict[str, Any] = response.json()["webhook"]
    return hook


def deliveries(world: World, user: str, hook_id: object) -> list[dict[str, Any]]:
    response = ok(world.client.get(f"{HOOKS}/{hook_id}/deliveries", headers=world.headers(user)))
    found: list[dict[str, Any]] = response.json()["deliveries"]
    return found


def redeliver(world: World, user: str, hook_id: object, delivery_id: str) -> httpx2.Response:
    return world.client.post(
        f"{HOOKS}/{hook_id}/deliveries/{delivery_id}/redeliver", headers=world.headers(user)
    )


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- registering --------------------------------------------------------------------------


def test_an_oem_admin_registers_lists_and_deletes_its_webhooks(world: World, receiver: Receiver) -> None:
    response = world.client.post(
        HOOKS,
        json={"url": receiver.url, "events": ["devices.reserved", "action.finished"], "secret": SECRET},
        headers=world.headers("mm_admin"),
    )
    assert response.status_code == 201, response.text
    hook = response.json()["webhook"]
    # The secret never comes back, not even in the answer that created it.
    assert SECRET not in response.text
    assert hook["secret"] == "********"
    assert hook["events"] == ["action.finished", "devices.reserved"]
    assert hook["url"] == receiver.url
    assert hook["created_by"] == "mm_admin@example.com"

    listed = ok(world.client.get(HOOKS, headers=world.headers("mm_admin")))
    assert SECRET not in listed.text
    assert listed.json() == {"webhooks": [hook]}

    gone = world.client.delete(f"{HOOKS}/{hook['id']}", headers=world.headers("mm_admin"))
    assert gone.status_code == 204, gone.text
    assert ok(world.client.get(HOOKS, headers=world.headers("mm_admin"))).json() == {"webhooks": []}
    again = world.client.delete(f"{HOOKS}/{hook['id']}", headers=world.headers("mm_admin"))
    assert_error(again, 404, "AFS-404")


@pytest.mark.parametrize("user", ["ayla", "mm", "mom", "som", "mm2"])
def test_every_other_role_is_refused(world: World, receiver: Receiver, user: str) -> None:
    hook = register(world, "mm_admin", receiver.url)
    body = {"url": receiver.url, "events": ALL_EVENTS, "secret": SECRET}
    headers = world.headers(user)
    calls = [
        world.client.post(HOOKS, json=body, headers=headers),
        world.client.get(HOOKS, headers=headers),
        world.client.delete(f"{HOOKS}/{hook['id']}", headers=headers),
        world.client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=headers),
        world.client.post(f"{HOOKS}/{hook['id']}/deliveries/abc/redeliver", headers=headers),
    ]
    for response in calls:
        assert_error(response, 403, "AFS-403")
    assert world.client.get(HOOKS).status_code == 401


def test_another_oems_webhook_reads_as_one_that_does_not_exist(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender
) -> None:
    pool(1)
    hook = register(world, "mm_admin", receiver.url)
    reserve(world, "mm")
    send_all(sender)
    (delivery,) = deliveries(world, "mm_admin", hook["id"])
    hidden, unknown = str(hook["id"]), "999999"

    assert ok(world.client.get(HOOKS, headers=world.headers("product_admin"))).json() == {"webhooks": []}
    for call in (
        lambda i: world.client.get(f"{HOOKS}/{i}/deliveries", headers=world.headers("product_admin")),
        lambda i: world.client.delete(f"{HOOKS}/{i}", headers=world.headers("product_admin")),
        lambda i: redeliver(world, "product_admin", i, delivery["id"]),
    ):
        assert_same_as_unknown(call, hidden, unknown)
    # Still there, untouched, for its own OEM.
    assert [d["id"] for d in deliveries(world, "mm_admin", hook["id"])] == [delivery["id"]]
    assert_error(
        world.client.get(f"{HOOKS}/abc/deliveries", headers=world.headers("mm_admin")), 404, "AFS-404"
    )


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        ({"url": "ftp://example.com/x"}, "url must be an http or https URL"),
        ({"url": "not a url"}, "url must be an http or https URL"),
        ({"url": "http://"}, "url must be an http or https URL"),
        ({"url": "https://example.com:99999999999/"}, "url must be an http or https URL"),
        ({"url": "https://example.com/" + "a" * 2048}, "url must be an http or https URL"),
        ({"url": 42}, "url must be an http or https URL"),
        ({"events": "action.finished"}, "events must be a non-empty list"),
        ({"events": ["action.finished", "device.exploded"]}, "events: device.exploded is not one of"),
        ({"secret": "short"}, "secret must be 16 to 255 printable characters"),
        ({"secret": "x" * 256}, "secret must be 16 to 255 printable characters"),
        ({"secret": "sixteen\ncharacters"}, "secret must be 16 to 255 printable characters"),
    ],
)
def test_bad_bodies_are_refused(world: World, body: dict[str, Any], failure: str) -> None:
    full = {"url": "https://hooks.example.com/in", "events": ["action.finished"], "secret": SECRET, **body}
    response = world.client.post(HOOKS, json=full, headers=world.headers("mm_admin"))
    message = assert_error(response, 422, "AFS-600")
    assert message.startswith(f"There were some failures while processing: {failure}"), message
    assert ok(world.client.get(HOOKS, headers=world.headers("mm_admin"))).json() == {"webhooks": []}


def test_missing_and_malformed_bodies(world: World) -> None:
    headers = world.headers("mm_admin")
    missing = world.client.post(HOOKS, json={"url": "https://x.example", "events": []}, headers=headers)
    assert_error(missing, 422, "AFS-607", "There are some missing required attrs: events, secret")
    every_failure = world.client.post(
        HOOKS, json={"url": "gopher://x", "events": ["nope"], "secret": "short"}, headers=headers
    )
    message = assert_error(every_failure, 422, "AFS-600")
    assert all(word in message for word in ("url must", "events: nope", "secret must")), message
    malformed = world.client.post(HOOKS, content=b"{not json", headers=headers)
    assert_error(malformed, 422, "AFS-600")


# --- delivering ---------------------------------------------------------------------------


def test_a_reserve_is_delivered_signed(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender
) -> None:
    pool(3)
    hook = register(world, "mm_admin", receiver.url)
    reserved = reservation(world, "mm", count=3)
    assert receiver.received == []  # the API never sends

    send_until(sender, lambda: len(receiver.received) == 1)
    (got,) = receiver.received
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-DeviceFactory-Event"] == "devices.reserved"
    assert got.headers["X-DeviceFactory-Signature"] == signed(SECRET, got.body)
    assert got.headers["X-DeviceFactory-Signature"] != signed(SECRET + "x", got.body)
    payload = got.json
    assert payload["event"] == "devices.reserved"
    assert payload["oem_id"] == world.oem_ids["modules"]
    assert datetime.fromisoformat(payload["time"].replace("Z", "+00:00")).tzinfo is not None
    assert payload["data"] == {
        "action_id": reserved.action_id,
        "model": "AY001MTP1",
        "count": 3,
        "first_dsn": reserved.dsns[0],
        "last_dsn": reserved.dsns[-1],
    }
    (delivery,) = deliveries(world, "mm_admin", hook["id"])
    assert got.headers["X-DeviceFactory-Delivery"] == delivery["id"]
    assert delivery["status"] == "delivered"
    assert (delivery["attempts"], delivery["response_code"], delivery["last_error"]) == (1, 200, None)
    assert delivery["next_attempt_at"] is None
    assert delivery["payload"] == payload


def test_only_the_events_asked_for_and_only_of_its_own_oem(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender
) -> None:
    pool(3)
    register(world, "mm_admin", receiver.url, ["action.finished"])
    register(world, "mm_admin", receiver.url + "/reserved", ["devices.reserved"])
    reserve(world, "mm")
    reserve(world, "mm2")  # another OEM's reserve
    reserve(world, "ayla")  # the platform's own devices have no OEM
    send_all(sender)
    assert [r.headers["X-DeviceFactory-Event"] for r in receiver.received] == ["devices.reserved"]
    assert receiver.received[0].json["oem_id"] == world.oem_ids["modules"]


def test_failures_are_retried_with_growing_waits_until_delivered(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender
) -> None:
    pool(1)
    hook = register(world, "mm_admin", receiver.url)
    receiver.answer(500, 503)
    reserve(world, "mm")

    send_until(sender, lambda: len(receiver.received) == 1)
    (pending,) = deliveries(world, "mm_admin", hook["id"])
    assert pending["status"] == "pending"
    assert (pending["attempts"], pending["response_code"], pending["last_error"]) == (1, 500, "HTTP 500")
    assert pending["next_attempt_at"] is not None

    send_until(sender, lambda: len(receiver.received) == 3)
    first, second, third = receiver.received
    assert len({r.headers["X-DeviceFactory-Delivery"] for r in receiver.received}) == 1
    assert first.body == second.body == third.body
    # Waits of 0.2 s, then 0.4 s (DEVICEFACTORY_WEBHOOK_BACKOFF_SECONDS=0.2).
    assert second.at - first.at >= 0.2
    assert third.at - second.at >= 0.4
    send_until(sender, lambda: deliveries(world, "mm_admin", hook["id"])[0]["status"] == "delivered")
    (delivered,) = deliveries(world, "mm_admin", hook["id"])
    assert (delivered["attempts"], delivered["response_code"], delivered["last_error"]) == (3, 200, None)


def test_a_receiver_that_never_recovers_is_given_up_after_the_window(
    world: World, settings: Settings, session_factory: sessionmaker[Session], pool: Pool, hanging_port: int
) -> None:
    pool(2)
    refused = register(world, "mm_admin", "http://127.0.0.1:9/refused")  # nothing listens on port 9
    hanging = register(world, "mm_admin", f"http://127.0.0.1:{hanging_port}/slow")
    sender = WebhookSender(
        session_factory,
        webhook_settings(settings, webhook_retry_window_seconds=1.0, webhook_timeout_seconds=0.3),
    )
    reserve(world, "mm")
    try:
        statuses = lambda: {  # noqa: E731
            d["status"] for h in (refused, hanging) for d in deliveries(world, "mm_admin", h["id"])
        }
        send_until(sender, lambda: statuses() == {"failed"})
    finally:
        sender.close()
    (gave_up,) = deliveries(world, "mm_admin", refused["id"])
    assert gave_up["attempts"] >= 2
    assert gave_up["response_code"] is None
    assert gave_up["last_error"].startswith("ConnectError")
    assert gave_up["next_attempt_at"] is None
    (slow,) = deliveries(world, "mm_admin", hanging["id"])
    assert slow["last_error"] == "timed out"


def test_a_webhooks_deliveries_arrive_in_order_behind_a_failing_one(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender
) -> None:
    pool(3)
    register(world, "mm_admin", receiver.url, ["devices.reserved"])
    receiver.answer(500, 500)
    actions = [reservation(world, "mm").action_id for _ in range(3)]

    send_until(sender, lambda: len(receiver.received) == 5)
    seen = [r.json["data"]["action_id"] for r in receiver.received]
    # The first is tried three times; the others wait behind it, then follow in order.
    assert seen == [actions[0], actions[0], actions[0], actions[1], actions[2]]


def test_redelivery_sends_the_same_delivery_again(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender
) -> None:
    pool(1)
    hook = register(world, "mm_admin", receiver.url)
    reserve(world, "mm")
    send_until(sender, lambda: len(receiver.received) == 1)
    (delivery,) = deliveries(world, "mm_admin", hook["id"])
    assert delivery["status"] == "delivered"

    response = redeliver(world, "mm_admin", hook["id"], delivery["id"])
    assert response.status_code == 202, response.text
    queued = response.json()["delivery"]
    assert (queued["id"], queued["status"], queued["attempts"]) == (delivery["id"], "pending", 0)

    send_until(sender, lambda: len(receiver.received) == 2)
    first, again = receiver.received
    assert again.body == first.body
    assert again.headers["X-DeviceFactory-Delivery"] == first.headers["X-DeviceFactory-Delivery"]
    assert again.headers["X-DeviceFactory-Signature"] == signed(SECRET, again.body)
    assert_error(redeliver(world, "mm_admin", hook["id"], "0" * 32), 404, "AFS-404")


@pytest.mark.parametrize("path", ["/devicefactory/v1/deliveries", f"{HOOKS}/deliveries"])
def test_a_delivery_is_redelivered_by_its_id_alone(
    world: World, receiver: Receiver, pool: Pool, sender: WebhookSender, path: str
) -> None:
    """SPEC §13's `.../deliveries/:id/redeliver`: the delivery id is unique, so its webhook's
    id is not needed; another OEM's delivery reads as an unknown one."""
    pool(1)
    hook = register(world, "mm_admin", receiver.url)
    reserve(world, "mm")
    send_until(sender, lambda: len(receiver.received) == 1)
    (delivery,) = deliveries(world, "mm_admin", hook["id"])
    url = f"{path}/{delivery['id']}/redeliver"
    assert_same_as_unknown(
        lambda i: world.client.post(f"{path}/{i}/redeliver", headers=world.headers("product_admin")),
        delivery["id"],
        "0" * 32,
    )
    assert_error(world.client.post(url, headers=world.headers("mm")), 403, "AFS-403")
    response = world.client.post(url, headers=world.headers("mm_admin"))
    assert response.status_code == 202, response.text
    assert (response.json()["delivery"]["id"], response.json()["delivery"]["status"]) == (
        delivery["id"],
        "pending",
    )
    send_until(sender, lambda: len(receiver.received) == 2)
    assert receiver.received[1].headers["X-DeviceFactory-Delivery"] == delivery["id"]


def test_a_finished_upload_and_a_factory_reset_are_delivered(
    world: World,
    receiver: Receiver,
    pool: Pool,
    sender: WebhookSender,
    run_actions: Callable[[], int],
) -> None:
    pool(3)
    register(world, "mm_admin", receiver.url, ["action.finished"])
    register(world, "gateway_admin", receiver.url, ["device.factory_reset"])
    dsns = reserve(world, "mm", count=2)
    lines = [log_line(dsns[0], "0000000000a1", "sig-a1"), log_line(dsns[1], "bad mac", "sig-a2")]
    action = upload(world, "mm", lines)
    (gateway,) = reserve(world, "som", "AY001RTA")
    ok(provision(world, gateway, WHITE_BOX, "som"))
    ok(
        world.client.post(
            f"/devicefactory/v1/devices/{gateway}/factory_reset", headers=world.headers("gateway_admin")
        )
    )
    assert run_actions() == 1

    send_until(sender, lambda: len(receiver.received) == 2)
    by_event = {r.headers["X-DeviceFactory-Event"]: r.json for r in receiver.received}
    finished = by_event["action.finished"]
    assert finished["oem_id"] == world.oem_ids["modules"]
    assert finished["data"]["action_id"] == action["id"]
    assert finished["data"]["type"] == "manufacture"
    assert finished["data"]["status"] == "failure"
    assert (finished["data"]["applied"], finished["data"]["invalid"], finished["data"]["lines_total"]) == (
        1,
        1,
        2,
    )
    reset = by_event["device.factory_reset"]
    assert reset["oem_id"] == world.oem_ids["gateways"]
    assert reset["data"] == {"dsn": gateway}


def test_deleting_a_webhook_drops_its_queued_deliveries(
    world: World,
    receiver: Receiver,
    pool: Pool,
    sender: WebhookSender,
    session_factory: sessionmaker[Session],
) -> None:
    pool(1)
    hook = register(world, "mm_admin", receiver.url)
    reserve(world, "mm")
    assert world.client.delete(f"{HOOKS}/{hook['id']}", headers=world.headers("mm_admin")).status_code == 204
    send_all(sender)
    assert receiver.received == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


# --- senders side by side, stopping, the worker -------------------------------------------


def test_two_senders_never_send_one_delivery_twice(
    world: World, receiver: Receiver, pool: Pool, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    pool(12)
    for n in range(3):
        register(world, "mm_admin", f"{receiver.url}/{n}", ["devices.reserved"])
    for _ in range(12):
        reserve(world, "mm")
    senders = [WebhookSender(session_factory, webhook_settings(settings)) for _ in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=s.run, args=(stop,)) for s in senders]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(receiver.received) < 36 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # anything sent twice would arrive now
    stop.set()
    for thread, sender in zip(threads, senders, strict=True):
        thread.join(5)
        sender.close()
    ids = [r.headers["X-DeviceFactory-Delivery"] for r in receiver.received]
    assert len(ids) == 36
    assert len(set(ids)) == 36
    for n in range(3):
        arrived = [r.json["data"]["action_id"] for r in receiver.received if r.path == f"/hook/{n}"]
        assert len(arrived) == 12
        assert arrived == sorted(arrived)


def test_the_sender_stops_within_seconds_with_a_dead_receiver(
    world: World, pool: Pool, settings: Settings, session_factory: sessionmaker[Session], hanging_port: int
) -> None:
    pool(1)
    register(world, "mm_admin", f"http://127.0.0.1:{hanging_port}/slow")
    reserve(world, "mm")
    sender = WebhookSender(session_factory, webhook_settings(settings, webhook_timeout_seconds=2))
    stop = threading.Event()
    thread = threading.Thread(target=sender.run, args=(stop,))
    thread.start()
    time.sleep(0.5)  # mid-send
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    sender.close()


def test_the_api_answers_at_once_whatever_the_receiver_does(
    world: World, pool: Pool, hanging_port: int
) -> None:
    pool(1)
    register(world, "mm_admin", f"http://127.0.0.1:{hanging_port}/slow")
    started = time.monotonic()
    reserve(world, "mm")
    assert time.monotonic() - started < 2


@pytest.mark.live
def test_devicefactory_worker_sends_webhooks_and_stops_on_sigterm(
    world: World, receiver: Receiver, pool: Pool, database_url: str, master_key_file: Path, tmp_path: Path
) -> None:
    pool(1)
    register(world, "mm_admin", receiver.url)
    reserve(world, "mm")
    env = {
        **os.environ,
        "DEVICEFACTORY_DATABASE_URL": database_url,
        "DEVICEFACTORY_MASTER_KEY_FILE": str(master_key_file),
        "DEVICEFACTORY_KEY_POOL_TARGET": "0",
        "DEVICEFACTORY_KEY_WORKERS": "1",
        "DEVICEFACTORY_WEBHOOK_POLL_SECONDS": "0.1",
    }
    with (tmp_path / "worker.log").open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "devicefactory", "worker"], env=env, cwd=tmp_path, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while not receiver.received and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
        assert len(receiver.received) == 1, (tmp_path / "worker.log").read_text()[-2000:]
        assert receiver.received[0].headers["X-DeviceFactory-Signature"] == signed(
            SECRET, receiver.received[0].body
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)
            pytest.fail("the worker did not stop within 10 s of SIGTERM")


# --- the backoff rule ---------------------------------------------------------------------


def test_the_backoff_doubles_up_to_its_cap_and_ends_with_the_window() -> None:
    backoff = Backoff(base=timedelta(seconds=30), cap=timedelta(hours=1), window=timedelta(hours=24))
    assert [backoff.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert backoff.delay(8) == timedelta(hours=1)
    assert backoff.delay(10_000) == timedelta(hours=1)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert backoff.next_attempt(attempts=1, first_attempt=start, now=start) == start + timedelta(seconds=30)
    late = start + timedelta(hours=23, minutes=50)
    assert backoff.next_attempt(attempts=40, first_attempt=start, now=late) == start + timedelta(hours=24)
    assert backoff.next_attempt(attempts=41, first_attempt=start, now=start + timedelta(hours=24)) is None


def test_finished_deliveries_are_deleted_after_their_retention(
    world: World, receiver: Receiver, pool: Pool, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    pool(1)
    hook = register(world, "mm_admin", receiver.url)
    receiver.answer(500)
    reserve(world, "mm")
    sender = WebhookSender(session_factory, webhook_settings(settings, webhook_retention_days=1))
    try:
        sender.run_once()  # failed once: still pending, kept
        assert sender.sweep(force=True) == 0
        send_until(sender, lambda: deliveries(world, "mm_admin", hook["id"])[0]["status"] == "delivered")
        assert sender.sweep(force=True) == 0  # delivered just now
        sender.retention = timedelta(0)
        assert sender.sweep(force=True) == 1
    finally:
        sender.close()
    assert deliveries(world, "mm_admin", hook["id"]) == []
