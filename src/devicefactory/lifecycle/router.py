"""GET /devicefactory/v1/reports/funnel: the lifecycle funnel (SPEC §13, docs/lifecycle.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from devicefactory.accounts.access import ActorDep
from devicefactory.errors import Unauthorized, ValidationFailed
from devicefactory.http.openapi import afs_errors
from devicefactory.http.transaction import NowDep, ReadSession, TransactionalRoute
from devicefactory.lifecycle import funnel, schemas

router = APIRouter(prefix="/devicefactory/v1/reports", tags=["reports"], route_class=TransactionalRoute)

_PARAMETERS = [
    {
        "name": "group_by",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["action", "model", "day"], "default": "model"},
        "description": "`action`: the reserve action; `model`; `day`: the UTC day of the reserve",
    },
    *(
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"Devices reserved {side} this moment, inclusive (YYYY-MM-DD is midnight UTC)",
            "example": "2016-11-24",
        }
        for name, side in (("from", "at or after"), ("to", "at or before"))
    ),
]


@router.get(
    "/funnel",
    response_model=None,
    responses={
        200: {"model": schemas.FunnelAnswer, "description": "Per group, the devices at each stage"},
        **afs_errors(Unauthorized(), ValidationFailed.of(["group_by must be one of action, model, day"])),
    },
    openapi_extra={"parameters": _PARAMETERS},
)
def funnel_report(request: Request, actor: ActorDep, session: ReadSession, now: NowDep) -> dict[str, Any]:
    """Reserved, manufactured, provisioned, verified and retired per group, and the age of
    the oldest DSN still waiting for manufacture; the caller's devices as in the DSN View."""
    report = funnel.funnel_report(session, actor, dict(request.query_params), now=now)
    return schemas.funnel_json(report)
