"""The reports API: anomalies (SPEC §13)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from devicefactory.accounts.access import ActorDep
from devicefactory.errors import Forbidden, TooManyRequests, Unauthorized, ValidationFailed
from devicefactory.http.openapi import afs_errors
from devicefactory.http.streaming import heavy_slot
from devicefactory.http.transaction import ReadSession, TransactionalRoute
from devicefactory.reports import anomalies
from devicefactory.reports.schemas import AnomalyReport

router = APIRouter(prefix="/devicefactory/v1/reports", tags=["reports"], route_class=TransactionalRoute)

_Cursor = Annotated[str | None, Query(description="`next_cursor` of this list's page before")]


@router.get(
    "/anomalies",
    response_model=None,
    responses={
        200: {"model": AnomalyReport, "description": "A page of each list of anomalies, newest first"},
        **afs_errors(
            Unauthorized(),
            Forbidden(anomalies.FORBIDDEN),
            ValidationFailed.of([f"limit must be an integer between 1 and {anomalies.MAX_LIMIT}"]),
            ValidationFailed.of(["identifiers_cursor is not a cursor of this list"]),
            TooManyRequests("file downloads, searches and exports in flight for your OEM", 1),
        ),
    },
)
def anomaly_report(
    request: Request,
    actor: ActorDep,
    session: ReadSession,
    limit: Annotated[
        str | None,
        Query(description=f"1 to {anomalies.MAX_LIMIT} items per list [{anomalies.DEFAULT_LIMIT}]"),
    ] = None,
    only: Annotated[
        str | None, Query(description="One list alone: `identifiers`, `conflicts` or `verifies`")
    ] = None,
    identifiers_cursor: _Cursor = None,
    conflicts_cursor: _Cursor = None,
    verifies_cursor: _Cursor = None,
) -> dict[str, Any]:
    """MACs and hwsigs claimed by more than one DSN (refused claims included), DSNs claimed
    again with other factory data, and refused verifies; each with its evidence (action ids,
    line numbers, jobs). An OEM sees its own devices and its own refused calls and lines."""
    with heavy_slot(request, actor):
        report = anomalies.anomaly_report(
            session,
            actor,
            limit=limit,
            only=only,
            cursors={
                "identifiers": identifiers_cursor,
                "conflicts": conflicts_cursor,
                "verifies": verifies_cursor,
            },
        )
    return report.model_dump()
