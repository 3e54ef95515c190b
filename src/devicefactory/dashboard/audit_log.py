"""The Audit Log page (OEM::Admin, Ayla::Admin): filtered entries, newest first, and the CSV."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from devicefactory.audit import service
from devicefactory.dashboard.pages import DashboardRoute, render
from devicefactory.dashboard.session import PREFIX, DashboardActor
from devicefactory.errors import ValidationFailed
from devicefactory.http.streaming import stream_heavy
from devicefactory.http.transaction import ReadSession, ReadSessionsDep, record_event
from devicefactory.tables.audit import AuditEntry

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

FILTERS = ("from", "to", "user", "what", "dsn")
PAGE = 100


def _values(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in FILTERS}


@router.get("/audit")
def audit_page(request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    """The audit log's entries matching the filters, a page at a time, with the CSV link."""
    values = _values(request)
    wanted = service.audit_filter(actor, values)  # AFS-403 for the other roles: the error page
    error: ValidationFailed | None = None
    entries: Sequence[AuditEntry] = []
    next_cursor: int | None = None
    try:
        entries, next_cursor = service.search_entries(
            session, wanted, cursor=request.query_params.get("cursor"), limit=str(PAGE)
        )
    except ValidationFailed as failed:
        error = failed
    query = {name: value for name, value in values.items() if value}
    return render(
        request,
        "audit.html",
        {
            "tab": "audit",
            "values": values,
            "entries": entries,
            "error": error,
            "csv_url": f"{PREFIX}/audit.csv" + (f"?{urlencode(query)}" if query else ""),
            "next_url": f"{PREFIX}/audit?{urlencode({**query, 'cursor': next_cursor})}"
            if next_cursor
            else None,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/audit.csv")
def audit_csv(request: Request, actor: DashboardActor, pages: ReadSessionsDep) -> Response:
    """The matching entries as CSV, oldest first, streamed."""
    values = _values(request)
    wanted = service.audit_filter(actor, values)

    def opened() -> service.AuditCsv:
        filters = {name: value for name, value in values.items() if value}
        record_event(request, "audit.download", {"filters": filters})
        return service.audit_csv(pages, wanted)

    return stream_heavy(request, actor, opened, {"Cache-Control": "no-store"})
