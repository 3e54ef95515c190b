"""The dashboard's one router (``app.include_router(dashboard_router)``): pages, static files."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from devicefactory.dashboard import actions_tab, anomalies_tab, audit_log, auth, dsn_view, users_tab
from devicefactory.dashboard.funnel_tab import router as funnel_router
from devicefactory.dashboard.pages import STATIC_FILES, DashboardRoute, redirect
from devicefactory.dashboard.session import PREFIX
from devicefactory.errors import NotFound

_MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

dashboard_router = APIRouter(route_class=DashboardRoute, include_in_schema=False)
dashboard_router.include_router(auth.router)
dashboard_router.include_router(actions_tab.router)
dashboard_router.include_router(dsn_view.router)
dashboard_router.include_router(audit_log.router)
dashboard_router.include_router(users_tab.router)
dashboard_router.include_router(funnel_router)
dashboard_router.include_router(anomalies_tab.router)


@dashboard_router.get(f"{PREFIX}/static/{{name}}")
def static_file(name: str, request: Request) -> Response:
    """The dashboard's own CSS and JavaScript (nothing is fetched from elsewhere)."""
    path = STATIC_FILES.get(name)
    if path is None:
        raise NotFound("Page not found")
    cache = "public, max-age=31536000, immutable" if request.query_params.get("v") else "no-cache"
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )


@dashboard_router.get(f"{PREFIX}/{{rest:path}}")
def not_found(rest: str, request: Request) -> Response:
    """Any other dashboard address: the 404 page (``/dashboard/`` is the landing page)."""
    if rest == "":
        return redirect(PREFIX)
    raise NotFound("Page not found")
