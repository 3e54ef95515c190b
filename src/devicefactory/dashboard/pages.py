"""Rendering: the Jinja2 environment, page responses, and service errors as HTML.

``DashboardRoute`` is the API's TransactionalRoute (commit before the response,
roll back on error) plus one thing: a ServiceError raised by a dashboard page is
rendered as a readable HTML message (code and message), never as JSON.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from devicefactory.actions.outcomes import OUTCOMES, outcome_key, outcome_label
from devicefactory.dashboard import csrf
from devicefactory.dashboard.session import PREFIX, SESSION_COOKIE, clear_cookie, session_token
from devicefactory.errors import NotFound, ServiceError, Unauthorized, ValidationFailed
from devicefactory.http.middleware import RequestRefused
from devicefactory.http.transaction import TransactionalRoute
from devicefactory.logs import request_id_var

log = logging.getLogger("devicefactory.dashboard")
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_FILES = {path.name: path for path in STATIC_DIR.iterdir() if path.is_file()}
_STATIC_VERSIONS = {
    name: hashlib.sha256(path.read_bytes()).hexdigest()[:12] for name, path in STATIC_FILES.items()
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def format_utc(value: datetime | None, seconds: bool = True) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def format_flag(value: bool | None) -> str:
    return "—" if value is None else ("Yes" if value else "No")


def static_url(name: str) -> str:
    return f"{PREFIX}/static/{name}?v={_STATIC_VERSIONS.get(name, '0')}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = format_utc
    env.filters["flag"] = format_flag
    env.globals["static"] = static_url
    env.globals["outcome_label"] = outcome_label
    env.globals["outcome_key"] = outcome_key
    env.globals["outcomes"] = OUTCOMES
    env.globals["prefix"] = PREFIX
    return env


ENV = _environment()


def render_text(request: Request, template: str, context: Mapping[str, Any] | None = None) -> str:
    token: str | None = getattr(request.state, "dashboard_token", None)
    base = {
        "request": request,
        "actor": getattr(request.state, "actor", None),
        "csrf_field": csrf.FIELD,
        "csrf_token": csrf.token(request, token) if token else "",
        "path": request.url.path,
    }
    return ENV.get_template(template).render({**base, **(context or {})})


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    return HTMLResponse(
        render_text(request, template, context), status_code=status_code, headers=SECURITY_HEADERS
    )


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def sign_in_redirect(request: Request) -> RedirectResponse:
    """To the sign-in page; "your session has ended" only when there was a session cookie."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    params = {"expired": "1"} if session_token(request) else {}
    if request.method == "GET":
        params["next"] = target
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in params.items())
    response = redirect(f"{PREFIX}/sign_in" + (f"?{query}" if query else ""))
    if "expired" in params:
        clear_cookie(request, response, SESSION_COOKIE)  # said once; a later visit is a new one
    return response


class InternalError(ServiceError):
    code = "AFS-500"
    status_code = 500

    def __init__(self) -> None:
        super().__init__(f"Internal server error (request {request_id_var.get()}): please report it")


def render_error(request: Request, error: ServiceError) -> Response:
    """A ServiceError as a page: its code and message in a banner, with the page's layout."""
    if isinstance(error, Unauthorized):
        return sign_in_redirect(request)
    return render(request, "error.html", {"error": error}, status_code=error.status_code)


def _validation_failure(error: RequestValidationError) -> ValidationFailed:
    failures = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        failures.append(f"{where}: {item.get('msg', 'invalid')}")
    return ValidationFailed.of(failures)


def _http_failure(error: StarletteHTTPException) -> ServiceError:
    if error.status_code == 404:
        return NotFound("Page not found")
    return ValidationFailed.of([str(error.detail)])


class DashboardRoute(TransactionalRoute):
    """TransactionalRoute whose errors render as HTML pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ServiceError as error:
                return render_error(request, error)
            except RequestValidationError as error:
                return render_error(request, _validation_failure(error))
            except StarletteHTTPException as error:
                return render_error(request, _http_failure(error))
            except RequestRefused:
                raise  # a body over a limit: the middleware answers it (413, 408)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return render_error(request, InternalError())

        return handle
