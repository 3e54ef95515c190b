"""The Funnel page: the lifecycle funnel (``lifecycle.funnel``) as bars and as a table."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from devicefactory.dashboard.pages import DashboardRoute, render
from devicefactory.dashboard.session import PREFIX, DashboardActor
from devicefactory.errors import ValidationFailed
from devicefactory.http.transaction import NowDep, ReadSession
from devicefactory.lifecycle import funnel

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

FILTERS = ("group_by", "from", "to")


def bar_width(count: int, widest: int) -> int:
    """A bar's width in whole percent of the widest group (a non-zero count shows at least 1)."""
    if count <= 0 or widest <= 0:
        return 0
    return max(1, round(100 * count / widest))


def age_text(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


@router.get("/funnel")
def funnel_page(request: Request, actor: DashboardActor, session: ReadSession, now: NowDep) -> Response:
    """Per group: reserved, manufactured, provisioned, verified, retired, and the oldest wait."""
    values = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    error: ValidationFailed | None = None
    report = None
    try:
        report = funnel.funnel_report(session, actor, {k: v for k, v in values.items() if v}, now=now)
    except ValidationFailed as failed:
        error = failed
    return render(
        request,
        "funnel.html",
        {
            "tab": "funnel",
            "values": values,
            "report": report,
            "error": error,
            "stages": funnel.STAGES,
            "width": bar_width,
            "age": age_text,
        },
        status_code=error.status_code if error else 200,
    )
