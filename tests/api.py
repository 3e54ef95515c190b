"""HTTP helpers over the test `World`: one place for what many test modules do through the API.

Two kinds of helper: those named after an endpoint (``manufacture``, ``provision``,
``post_reserve``, ``post_upload``) send the request and return the response whatever it
is, for the tests of that endpoint; the others (``reserve``, ``device``, ``jobs``,
``upload``, ``action``...) assert that the call succeeded and return what it gave.
``ok(response)`` turns the first kind into the second.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import httpx2

from tests.conftest import FrozenClock
from tests.world import World

V1 = "/devicefactory/v1"
DEVICES = f"{V1}/devices"
ACTIONS = f"{V1}/factory_actions"
UNKNOWN_DSN = "AC000W999999999"
FAILURES = "There were some failures while processing: "
# The first fields of a factory log line (as written by the factory's tester).
HEAD = "2,1318462302,2016/11/24 10:34:23 UTC"
# A white-box gateway's provision body: all a software OEM sends for a reserved DSN.
WHITE_BOX = {
    "model": "AY001RTA",
    "oem_model": "zbgw",
    "oem_host_version": "1.0",
    "mac": "123456789abc",
    "manuf_model": "linux",
    "module_sw_version": "devd 1.0",
    "dom_at": "2014/06/02 16:21:10 UTC",
}
# Every field a manufacture or provision body may name (an AFS-600 failure starts with one):
# those of a gateway's provision body and the optional ones.
DEVICE_FIELDS = (*WHITE_BOX, "hwsig", "manuf_sn", "odm", "wifi_setup_key", "ads_connect_flag")


# --- answers ------------------------------------------------------------------------------


def ok(response: httpx2.Response) -> httpx2.Response:
    """Asserts a 200 (with the body as the message otherwise); returns the response."""
    assert response.status_code == 200, response.text
    return response


def assert_error(response: httpx2.Response, status: int, code: str, message: str | None = None) -> str:
    """The one error shape: ``{"error": [{"code", "message"}]}``; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"], body
    assert len(body["error"]) == 1, body
    entry = body["error"][0]
    assert set(entry) == {"code", "message"}, body
    assert entry["code"] == code, body
    if code == "AFS-600":
        assert entry["message"].startswith(FAILURES), body  # the seed's form, always (§11)
    if message is not None:
        assert entry["message"] == message
    return str(entry["message"])


def assert_failures(response: httpx2.Response, *fields: str) -> list[str]:
    """AFS-600 listing one failure per field given, each starting with the field's name."""
    message = assert_error(response, 422, "AFS-600")
    assert message.startswith(FAILURES), message
    failures: list[str] = []
    for part in message[len(FAILURES) :].split(", "):
        # A failure's own text may hold ", " ("is not true, false, 1 or 0").
        if failures and not part.startswith(tuple(f"{f} " for f in DEVICE_FIELDS)):
            failures[-1] += ", " + part
        else:
            failures.append(part)
    named = sorted(next((f for f in fields if failure.startswith(f"{f} ")), failure) for failure in failures)
    assert named == sorted(fields), message
    return failures


def assert_same_as_unknown(
    call: Callable[[str], httpx2.Response], hidden: str, unknown: str = UNKNOWN_DSN
) -> tuple[httpx2.Response, httpx2.Response]:
    """``call(hidden)`` is 404 with exactly ``call(unknown)``'s body (ids swapped);
    returns both responses, hidden first."""
    seen = call(hidden)
    missing = call(unknown)
    assert_error(missing, 404, "AFS-404")
    assert seen.status_code == 404, seen.text
    assert seen.json() == json.loads(missing.text.replace(unknown, hidden))
    return seen, missing


# --- devices ------------------------------------------------------------------------------


class Reservation(NamedTuple):
    """A successful reserve: the factory action it made and its devices, in DSN order."""

    action_id: int
    devices: list[dict[str, str]]  # each {"dsn", "public_key"}

    @property
    def dsns(self) -> list[str]:
        return [device["dsn"] for device in self.devices]


def post_reserve(world: World, user: str, body: Any) -> httpx2.Response:
    return world.client.post(f"{DEVICES}/reserve", json=body, headers=world.headers(user))


def reservation(
    world: World, user: str = "mm", model: str = "AY001MTP1", count: object = 1, **extra: Any
) -> Reservation:
    response = ok(post_reserve(world, user, {"model": model, "count": count, **extra}))
    action_id = response.headers["X-Factory-Action"]
    assert action_id.isdigit(), action_id
    return Reservation(int(action_id), [item["device"] for item in response.json()])


def reserve(
    world: World, user: str = "mm", model: str = "AY001MTP1", count: object = 1, **extra: Any
) -> list[str]:
    """The DSNs of a successful reserve."""
    return reservation(world, user, model, count, **extra).dsns


def manufacture_body(n: int) -> dict[str, str]:
    """What a factory reports for black-box module number ``n``: mac n, hwsig sig-n, WD101a."""
    return {
        "model": "AY001MTP1",
        "mac": f"{n:012x}",
        "hwsig": f"sig-{n}",
        "dom_at": "2016/11/24 10:34:23 UTC",
        "manuf_model": "WD101a",
    }


def manufacture(world: World, dsn: str, body: Any, user: str = "mm") -> httpx2.Response:
    return world.client.post(f"{DEVICES}/{dsn}/manufacture", json=body, headers=world.headers(user))


def provision(world: World, dsn: str, body: Any, user: str) -> httpx2.Response:
    return world.client.post(f"{DEVICES}/{dsn}/provision", json=body, headers=world.headers(user))


def device(world: World, dsn: str, user: str = "ayla") -> dict[str, Any]:
    """The device detail, as ``user`` (by default Ayla::Admin, who sees every device)."""
    response = ok(world.client.get(f"{DEVICES}/{dsn}", headers=world.headers(user)))
    result: dict[str, Any] = response.json()["device"]
    return result


def job_records(world: World, dsn: str) -> list[dict[str, Any]]:
    """The device's jobs as the API lists them (read by Ayla::Admin), oldest first."""
    response = ok(world.client.get(f"{DEVICES}/{dsn}/jobs", headers=world.headers("ayla")))
    result: list[dict[str, Any]] = response.json()["jobs"]
    return result


def jobs(world: World, dsn: str) -> list[tuple[str, str, str | None]]:
    """The device's jobs as (operation, result, error_code), oldest first."""
    return [(j["operation"], j["result"], j["error_code"]) for j in job_records(world, dsn)]


def last_job(world: World, dsn: str) -> dict[str, Any]:
    return job_records(world, dsn)[-1]


def advance(world: World, clock: FrozenClock, *, days: int) -> None:
    """Move the service's clock; access tokens expire meanwhile, so sign in again."""
    clock.advance(days=days)
    world._tokens.clear()


# --- factory actions ----------------------------------------------------------------------


def log_line(
    dsn: str, mac: str, hwsig: str, *, status: str = "label", err: str = "0", model: str = "AY001MTP1"
) -> str:
    """One line of a factory log (manuf_model WD101a, manuf_sn p7)."""
    return f"{HEAD},{status},{err},{model},{dsn},{mac},WD101a,p7,{hwsig},"


def post_upload(
    world: World,
    user: str,
    content: bytes | io.BufferedIOBase,
    *,
    type_: str = "manufacture",
    validate: bool = False,
    name: str = "line.log",
    content_type: str = "text/plain",
    **extra: str,
) -> httpx2.Response:
    return world.client.post(
        ACTIONS,
        files={"file": (name, content, content_type)},  # type: ignore[dict-item]  # any binary file
        data={"type": type_, "validate_only": "true" if validate else "false", **extra},
        headers=world.headers(user),
    )


def upload(
    world: World,
    user: str,
    content: bytes | Sequence[str],
    *,
    type_: str = "manufacture",
    validate: bool = False,
    name: str = "line.log",
    **extra: str,
) -> dict[str, Any]:
    """An accepted (202) upload of a file, or of its lines; returns the new action."""
    if not isinstance(content, bytes):
        content = ("\n".join(content) + "\n").encode()
    response = post_upload(world, user, content, type_=type_, validate=validate, name=name, **extra)
    assert response.status_code == 202, response.text
    result: dict[str, Any] = response.json()["factory_action"]
    return result


def action(world: World, user: str, action_id: int) -> dict[str, Any]:
    """GET one factory action as ``user``: ``{"factory_action": ..., ...}``."""
    body: dict[str, Any] = ok(world.client.get(f"{ACTIONS}/{action_id}", headers=world.headers(user))).json()
    return body


def file_text(world: World, user: str, action_id: int, kind: str) -> str:
    """The text of one of an action's files (csv, log, failed...) as ``user``."""
    return ok(world.client.get(f"{ACTIONS}/{action_id}/files/{kind}", headers=world.headers(user))).text
