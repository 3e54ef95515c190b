"""Every error leaves as the seed's body ``{"error": [{"code": "AFS-...", "message": ...}]}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from devicefactory.db import is_statement_timeout
from devicefactory.errors import NotFound, ServiceError, TooSlow, Unauthorized, ValidationFailed

log = logging.getLogger("devicefactory.web")


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": [error.as_dict()]}, status_code=error.status_code, headers=headers)


async def _service_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return error_response(exc, error_headers(exc))


def error_headers(error: ServiceError) -> dict[str, str]:
    """WWW-Authenticate on 401, Retry-After whenever the error knows when to retry."""
    headers = {"WWW-Authenticate": "auth_token"} if isinstance(error, Unauthorized) else {}
    headers.update(error.headers)
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return headers


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    failures = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p not in ('body', 'query', 'path'))}: "
        f"{e.get('msg', 'invalid')}"
        for e in exc.errors()
    ]
    return error_response(ValidationFailed.of(failures))


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(NotFound())
    error = ServiceError(str(exc.detail))
    body = {"error": [{"code": f"AFS-{exc.status_code}", "message": error.message}]}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _database_refused_value(_request: Request, exc: Exception) -> Response:
    # Values a database cannot store (a NUL byte, an out-of-range number) are bad
    # input that slipped past a check: the caller's error, never a 500.
    log.warning("database refused a value: %s", type(exc).__name__)
    return error_response(
        ValidationFailed.of(["a value contains characters or numbers that cannot be stored"])
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    if is_statement_timeout(exc):
        log.warning("statement timeout on %s %s", request.method, request.url.path)
        error = TooSlow()
        return error_response(error, error_headers(error))
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = {"error": [{"code": "AFS-500", "message": "Internal server error"}]}
    return JSONResponse(body, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DataError, _database_refused_value)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(Exception, _unexpected_error)
