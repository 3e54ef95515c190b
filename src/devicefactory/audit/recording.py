"""What an audit entry says of a request: who, from where, what, and on which object.

``AuditRecorder`` is the app's ``audit_hook`` (``http.transaction``): the request
transaction calls it just before a write route's successful commit, and
``record_event`` for a file download. It reads the caller from ``request.state.actor``
(set by ``accounts.access.get_actor`` and the dashboard's ``get_dashboard_actor``), the
client address from the request, the request id from the logs' context, and the object
from the path parameters and the answer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

from devicefactory.audit_chain import EntryFields, append
from devicefactory.http.caller import client_address
from devicefactory.logs import request_id_var

V1 = "/devicefactory/v1"
DASHBOARD = "/dashboard"
DOWNLOAD = "factory_actions.download"
# Stable names of the write routes: what an entry says was done. A write route not named
# here (one added later) is named after its router's tag and its function.
NAMES: dict[tuple[str, str], str] = {
    ("POST", f"{V1}/devices/reserve"): "devices.reserve",
    ("POST", f"{V1}/devices/{{dsn}}/manufacture"): "devices.manufacture",
    ("POST", f"{V1}/devices/{{dsn}}/provision"): "devices.provision",
    ("POST", f"{V1}/devices/{{dsn}}/verify"): "devices.verify",
    ("POST", f"{V1}/devices/{{dsn}}/factory_reset"): "devices.factory_reset",
    ("POST", f"{V1}/devices/{{dsn}}/retire"): "devices.retire",
    ("POST", f"{V1}/factory_actions"): "factory_actions.create",
    ("POST", f"{V1}/admin/oems"): "admin.oems.create",
    ("PUT", f"{V1}/admin/oems/{{oem_id}}/certificate"): "admin.oems.certificate",
    ("POST", f"{V1}/admin/users"): "admin.users.create",
    ("POST", f"{V1}/admin/models"): "admin.models.create",
    ("POST", f"{V1}/webhooks"): "webhooks.create",
    ("DELETE", f"{V1}/webhooks/{{webhook_id}}"): "webhooks.delete",
    ("POST", f"{V1}/webhooks/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver"): "webhooks.redeliver",
    ("POST", f"{DASHBOARD}/actions/reserve"): "dashboard.reserve",
    ("POST", f"{DASHBOARD}/actions/upload"): "dashboard.upload",
    ("POST", f"{DASHBOARD}/devices/{{dsn}}/factory_reset"): "dashboard.factory_reset",
}
# Signing in, refreshing a token and signing out change only the caller's own session:
# not audited (docs/audit.md).
UNAUDITED = ("/users/", f"{DASHBOARD}/sign_in", f"{DASHBOARD}/sign_out")
# What names the created object in a create's answer, e.g. {"user": {"id", "email"}}.
_NAMING_KEYS = ("id", "oem_id", "name", "email", "role", "type")
_SMALL_ANSWER = 64 * 1024
# The dashboard answers a change with a redirect; the action it made is in its address.
_REDIRECTED_ACTION = re.compile(r"(?:[?&]done=|/actions/)(\d+)(?:$|[?&#])")
_DSN = re.compile(rb'"dsn":"([^"]*)"')


class AuditRecorder:
    """The app's ``audit_hook``: one chain entry per change and per download."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock

    def change(self, session: Session, request: Request, answer: object) -> None:
        route = request.scope.get("route")
        path = route.path if isinstance(route, APIRoute) else request.url.path
        if path.startswith(UNAUDITED) or _status(answer, route) >= 400:
            return
        details: dict[str, object] = dict(request.path_params)
        details.update(_answer_details(answer, route))
        self._append(session, request, route_name(request.method, route, path), details)

    def event(self, session: Session, request: Request, what: str, details: Mapping[str, object]) -> None:
        self._append(session, request, what, dict(details))

    def _append(self, session: Session, request: Request, what: str, details: dict[str, object]) -> None:
        actor = getattr(request.state, "actor", None)
        dsn = details.pop("dsn", None)
        action_id = details.pop("action_id", None)
        request_id = request_id_var.get()
        fields = EntryFields(
            at=self.clock(),
            what=what,
            user_id=getattr(actor, "user_id", None),
            user_email=getattr(actor, "email", None),
            oem_id=getattr(actor, "oem_id", None),
            client=client_address(request),
            request_id=None if request_id == "-" else request_id,
            dsn=str(dsn) if dsn is not None else None,
            action_id=_integer(action_id),
            object=details,
        )
        append(session, fields)


def install(app: FastAPI) -> None:
    """Record the app's changes and downloads.

    ``DEVICEFACTORY_AUDIT=off`` turns recording off: it exists only for the benchmark that
    measures what recording costs (bench/audit.py) and must never be set in production.
    """
    if os.environ.get("DEVICEFACTORY_AUDIT", "on").strip().lower() == "off":
        app.state.audit_hook = None
        return
    app.state.audit_hook = AuditRecorder(app.state.clock)


def route_name(method: str, route: object, path: str) -> str:
    """The stable name of a write route (``NAMES``), else ``<tag or dashboard>.<function>``."""
    known = NAMES.get((method, path))
    if known is not None:
        return known
    name = getattr(route, "name", None) or method.lower()
    tags = getattr(route, "tags", None) or []
    area = "dashboard" if path.startswith(DASHBOARD) else (str(tags[0]) if tags else "api")
    return f"{re.sub(r'[^a-z0-9]+', '_', area.lower())}.{name}"[:64]


def _status(answer: object, route: object) -> int:
    if isinstance(answer, Response):
        return answer.status_code
    status = getattr(route, "status_code", None)
    return status if isinstance(status, int) else 200


def _answer_details(answer: object, route: object) -> dict[str, object]:
    """The action an answer names (``X-Factory-Action``, a dashboard redirect), the DSNs a
    reserve answered, and the id of what a create made."""
    details: dict[str, object] = {}
    content: object = answer
    created = _status(answer, route) in (201, 202)
    if isinstance(answer, Response):
        content = None
        action = answer.headers.get("x-factory-action")
        location = answer.headers.get("location", "")
        redirected = _REDIRECTED_ACTION.search(location) if answer.status_code in (302, 303) else None
        if action is not None or redirected is not None:
            details["action_id"] = _integer(action if action is not None else redirected and redirected[1])
        body = bytes(answer.body) if hasattr(answer, "body") else b""
        if body.startswith(b"["):
            details.update(_reserved(body))
        elif created and "json" in answer.headers.get("content-type", "") and 0 < len(body) <= _SMALL_ANSWER:
            content = json.loads(body)
    if created and isinstance(content, dict) and len(content) == 1:
        ((kind, made),) = content.items()
        if isinstance(made, dict):
            details[kind] = {key: made[key] for key in _NAMING_KEYS if key in made}
    return details


def _reserved(body: bytes) -> dict[str, object]:
    """A reserve's answer, a list of devices: how many and their range, read without
    parsing the whole (a 1000-device answer is half a megabyte of public keys)."""
    first, last = _DSN.search(body), None
    if first is None:
        return {}
    last_at = body.rfind(b'"dsn":"')
    last = _DSN.match(body, last_at)
    count = body.count(b'"dsn":"')
    found: dict[str, object] = {
        "count": count,
        "first_dsn": first[1].decode(),
        "last_dsn": last[1].decode() if last else None,
    }
    if count == 1:
        found["dsn"] = first[1].decode()
    return found


def _integer(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
