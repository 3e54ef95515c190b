"""The audit log's API: its entries as JSON pages and as a streamed CSV (SPEC §13)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from devicefactory.accounts.access import ActorDep
from devicefactory.audit import service
from devicefactory.audit.schemas import entry_json
from devicefactory.errors import Forbidden, TooManyRequests, Unauthorized, ValidationFailed
from devicefactory.http.openapi import afs_errors
from devicefactory.http.streaming import stream_heavy
from devicefactory.http.transaction import ReadSession, ReadSessionsDep, TransactionalRoute, record_event

router = APIRouter(prefix="/devicefactory/v1", tags=["audit"], route_class=TransactionalRoute)

_FILTER_ERRORS = (
    Unauthorized(),
    Forbidden("Forbidden: only OEM::Admin and Ayla::Admin read the audit log"),
    ValidationFailed.of(["from 24/11/2016 is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"]),
)
_From = Annotated[
    str | None, Query(alias="from", description="Entries at or after: an ISO date or date-time (UTC)")
]
_To = Annotated[
    str | None,
    Query(description="Entries before this date-time; a date alone means through the end of that day"),
]
_User = Annotated[str | None, Query(description="The email of the user who acted")]
_What = Annotated[
    str | None, Query(description="What was done, e.g. `devices.reserve`; `devices.*` for a prefix")
]
_Dsn = Annotated[str | None, Query(description="The device the entry names")]


class AuditEntryBody(BaseModel):
    id: int
    at: str
    user_id: int | None
    user_email: str | None
    oem_id: str | None
    client: str | None
    request_id: str | None
    what: str
    dsn: str | None
    action_id: int | None
    object: dict[str, Any]
    previous_hash: str
    entry_hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntryBody]
    next_cursor: int | None


@router.get(
    "/audit",
    response_model=None,
    responses={
        200: {"model": AuditPage, "description": "A page of entries, newest first"},
        **afs_errors(
            *_FILTER_ERRORS,
            ValidationFailed.of([f"limit must be an integer between 1 and {service.MAX_PAGE}"]),
        ),
    },
)
def audit_entries(
    request: Request,
    actor: ActorDep,
    session: ReadSession,
    from_: _From = None,
    to: _To = None,
    user: _User = None,
    what: _What = None,
    dsn: _Dsn = None,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the page before")] = None,
    limit: Annotated[str | None, Query(description=f"1 to {service.MAX_PAGE} entries [50]")] = None,
) -> dict[str, Any]:
    """The audit log: OEM::Admin sees its OEM's entries, Ayla::Admin every entry."""
    wanted = service.audit_filter(actor, {"from": from_, "to": to, "user": user, "what": what, "dsn": dsn})
    entries, next_cursor = service.search_entries(session, wanted, cursor=cursor, limit=limit)
    return {"entries": [entry_json(entry) for entry in entries], "next_cursor": next_cursor}


@router.get(
    "/audit.csv",
    response_model=None,
    responses={
        200: {"description": "Every matching entry, oldest first", "content": {"text/csv": {}}},
        **afs_errors(
            *_FILTER_ERRORS, TooManyRequests("file downloads, searches and exports in flight for your OEM", 1)
        ),
    },
)
def audit_csv(
    request: Request,
    actor: ActorDep,
    pages: ReadSessionsDep,
    from_: _From = None,
    to: _To = None,
    user: _User = None,
    what: _What = None,
    dsn: _Dsn = None,
) -> Response:
    """The audit log as CSV, streamed, with the filters of `GET /audit`."""
    params = {"from": from_, "to": to, "user": user, "what": what, "dsn": dsn}
    wanted = service.audit_filter(actor, params)

    def opened() -> service.AuditCsv:
        filters = {key: value for key, value in params.items() if value}
        record_event(request, "audit.download", {"filters": filters})
        return service.audit_csv(pages, wanted)

    return stream_heavy(request, actor, opened)
