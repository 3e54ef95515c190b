"""The Anomalies page: the anomalies report (SPEC §13), a page of each list, with its evidence."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from devicefactory.dashboard.pages import DashboardRoute, render
from devicefactory.dashboard.session import PREFIX, DashboardActor
from devicefactory.http.streaming import heavy_slot
from devicefactory.http.transaction import ReadSession
from devicefactory.reports import anomalies

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

PAGE = "25"


@router.get("/anomalies")
def anomalies_page(request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    """Shared MACs and hwsigs, conflicting claims, refused verifies; `only` pages one list."""
    params = request.query_params
    only = params.get("only") or None
    cursors = {name: params.get(f"{name}_cursor") or None for name in anomalies.LISTS}
    with heavy_slot(request, actor):
        report = anomalies.anomaly_report(session, actor, limit=PAGE, only=only, cursors=cursors)
    pages = {
        "identifiers": report.shared_identifiers.next_cursor if report.shared_identifiers else None,
        "conflicts": report.conflicting_claims.next_cursor if report.conflicting_claims else None,
        "verifies": report.failed_verifies.next_cursor if report.failed_verifies else None,
    }
    next_urls = {
        name: f"{PREFIX}/anomalies?{urlencode({'only': name, f'{name}_cursor': cursor})}"
        for name, cursor in pages.items()
        if cursor
    }
    return render(
        request,
        "anomalies.html",
        {"tab": "anomalies", "report": report, "only": only, "next_urls": next_urls},
    )
