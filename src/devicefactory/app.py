"""The web application: API routers, dashboard, error renderers, health and metrics."""

from __future__ import annotations

import gc
import hmac
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from devicefactory.accounts.access import SignInLimits
from devicefactory.accounts.router import admin_router, users_router
from devicefactory.actions.router import router as actions_router
from devicefactory.audit import recording as audit_recording
from devicefactory.audit.router import router as audit_router
from devicefactory.config import Settings
from devicefactory.dashboard.router import dashboard_router
from devicefactory.db import make_engine, make_reader_engine, make_session_factory, utcnow
from devicefactory.devices.router import router as devices_router
from devicefactory.errors import Forbidden
from devicefactory.gauges import database_gauges
from devicefactory.health import not_ready_because
from devicefactory.http.errors import error_response, install_error_handlers
from devicefactory.http.line_writer import LineWriter
from devicefactory.http.middleware import RequestContextMiddleware
from devicefactory.idempotency import IdempotencyMiddleware
from devicefactory.keys.access import watch_keyring
from devicefactory.lifecycle.router import router as lifecycle_router
from devicefactory.limits import InFlightLimit, RateLimit
from devicefactory.logs import configure_logging
from devicefactory.metrics import Metrics
from devicefactory.reports.router import router as reports_router
from devicefactory.storage import FileStore
from devicefactory.webhooks.router import deliveries_router
from devicefactory.webhooks.router import router as webhooks_router

API_DESCRIPTION = """\
Device Factory Service: reserve device serial numbers (DSNs) with their RSA key pairs,
record manufacture and provision data, and work factory log files in bulk.
Compatible with the Ayla Factory Service API 2.2. Errors always have the shape
`{"error": [{"code": "AFS-6xx", "message": "..."}]}`.
"""


def create_app(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """Build the app; nothing happens at import time."""
    timeout = settings.statement_timeout_seconds
    factory = session_factory or make_session_factory(
        make_engine(settings.database_url, statement_timeout=timeout)
    )
    # Tests hand in one factory for everything; a server reads through its own engine.
    reader = (
        factory
        if session_factory
        else make_session_factory(make_reader_engine(settings.database_url, statement_timeout=timeout))
    )
    metrics = Metrics()
    metrics.add_database_gauges(lambda: database_gauges(reader))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        watcher = threading.Thread(target=watch_keyring, args=(app, stop), name="keyring-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()

    app = FastAPI(
        title="Device Factory Service",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.session_factory = factory
    app.state.read_session_factory = reader
    # One writer connection per process on SQLite (db.py): the line's writes are group
    # committed by the process's writer thread (http/line_writer.py), other writes queue
    # for it; elsewhere writers run side by side.
    one_writer = factory.kw["bind"].dialect.name == "sqlite"
    app.state.writer_lane_width = 1 if one_writer else None
    app.state.line_writer = LineWriter(factory.kw["bind"]) if one_writer else None
    savepoints = {**factory.kw, "join_transaction_mode": "create_savepoint"}
    app.state.line_session_factory = sessionmaker(**savepoints)
    app.state.clock = clock
    app.state.metrics = metrics
    app.state.file_store = FileStore(factory)
    app.state.heavy_reads = InFlightLimit(
        "heavy_reads_per_oem",
        settings.heavy_requests_per_oem,
        "file downloads, searches and exports in flight for your OEM",
        on_refusal=metrics.refused,
    )
    app.state.sign_in_limits = SignInLimits(
        RateLimit(
            "sign_in_per_address",
            settings.sign_in_per_address_per_minute,
            60,
            "sign-ins from your address",
            on_refusal=metrics.refused,
        ),
        RateLimit(
            "sign_in_per_email",
            settings.sign_in_per_email_per_minute,
            60,
            "sign-ins with this email",
            on_refusal=metrics.refused,
        ),
    )
    install_error_handlers(app)
    # The factory line's calls first: routes are matched in order.
    app.include_router(devices_router)
    app.include_router(users_router)
    app.include_router(admin_router)
    app.include_router(lifecycle_router)
    app.include_router(actions_router)
    app.include_router(webhooks_router)
    app.include_router(deliveries_router)
    app.include_router(audit_router)
    app.include_router(reports_router)
    audit_recording.install(app)  # every change and download is an audit entry (SPEC §13)
    app.include_router(dashboard_router)
    _add_operational_routes(app, reader, metrics)
    # Innermost: it sees the body after the size and time limits, and the path without
    # its ".json" suffix.
    app.add_middleware(
        IdempotencyMiddleware, session_factory=factory, read_session_factory=reader, clock=clock
    )
    app.add_middleware(
        RequestContextMiddleware,
        max_body=settings.max_json_bytes,
        max_upload=settings.max_upload_bytes,
        max_headers=settings.max_header_bytes,
        body_idle_seconds=settings.body_idle_seconds,
        observe=metrics.observe,
    )
    app.add_middleware(JsonSuffixMiddleware)
    return app


def _add_operational_routes(app: FastAPI, factory: sessionmaker[Session], metrics: Metrics) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> Response:
        """200 when the database answers."""
        try:
            await run_in_threadpool(_ping, factory)
        except Exception:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> Response:
        """200 when the database answers, the schema is at the code's head and the key pool is
        above its low-water mark; 503 with the reasons otherwise."""
        reasons = await run_in_threadpool(not_ready_because, factory, request.app.state.settings)
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["operations"])
    def prometheus_metrics(request: Request) -> Response:
        """Prometheus text format: with `Authorization: Bearer <DEVICEFACTORY_METRICS_TOKEN>`,
        or from this host alone when no token is set."""
        if not metrics_allowed(request, request.app.state.settings.metrics_token):
            return error_response(Forbidden("Forbidden: /metrics needs the metrics token"))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def metrics_allowed(request: Request, token: str | None) -> bool:
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1", "localhost", "testclient")


def _ping(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.execute(text("SELECT 1"))


class JsonSuffixMiddleware:
    """Ayla clients append ``.json`` to every route (``/devices.json``, ``/sign_in.json``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.endswith(".json") and path.startswith(("/devicefactory/v1/", "/users/")):
                scope = dict(scope, path=path[: -len(".json")], raw_path=None)
        await self.app(scope, receive, send)


def app_from_environment() -> FastAPI:
    """The uvicorn factory used by ``devicefactory serve``: settings from the environment."""
    from devicefactory.processes import end_with_serve

    end_with_serve()  # a web worker process of `serve --web-workers N`
    settings = Settings()
    configure_logging(settings.log_format)
    app = create_app(settings)
    # What exists now (modules, routes, schemas: ~160,000 objects) lives as long as the
    # process: keep it out of the cyclic collector's full passes, which took 90-100 ms each
    # under load, stalling every request of the process (and the line's writer lock). The
    # collector also runs less often: full passes (still 3-11 ms) 10x rarer, young ones
    # every 7,000 allocations (measured beside the defaults: p99 -4 %, CPU -4 %).
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 100)
    return app
