"""Factory actions: list, detail with devices, file downloads, uploads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from devicefactory.accounts.access import ActorDep
from devicefactory.actions import service, uploads
from devicefactory.actions.schemas import action_json
from devicefactory.devices.schemas import device_json
from devicefactory.http.bodies import parse_upload_form
from devicefactory.http.streaming import stream_heavy
from devicefactory.http.transaction import (
    NowDep,
    ReadSession,
    ReadSessionsDep,
    SettingsDep,
    TransactionalRoute,
    WriteSession,
)

router = APIRouter(
    prefix="/devicefactory/v1/factory_actions",
    tags=["factory actions"],
    route_class=TransactionalRoute,
)


@router.get("")
def list_actions(
    actor: ActorDep,
    session: ReadSession,
    type: Annotated[str | None, Query()] = None,
    status: str | None = None,
    created_by: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    cursor: int | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The caller's OEM's actions, newest first; `cursor` is `next_cursor` of the page before."""
    actions = service.search_actions(
        session,
        actor,
        type_=type,
        status=status,
        created_by=created_by,
        created_from=from_,
        created_to=to,
        cursor=cursor,
        limit=limit,
    )
    next_cursor = actions[-1].id if len(actions) == limit else None
    return {"factory_actions": [action_json(a) for a in actions], "next_cursor": next_cursor}


@router.post("", status_code=202)
async def upload(
    request: Request, actor: ActorDep, session: WriteSession, settings: SettingsDep, now: NowDep
) -> JSONResponse:
    """Upload a factory log or CSV (multipart: `file`, `type`, `validate_only`, `oem_host_version`).

    The action is created at once and worked in the background; poll it for progress.
    """
    form = await parse_upload_form(request)
    try:
        action = await run_in_threadpool(
            uploads.create_upload_action,
            session,
            actor,
            upload_type=form.type,
            validate_only=form.validate_only,
            file_name=form.file_name,
            stream=form.stream,
            store=request.app.state.file_store,
            max_lines=settings.max_upload_lines,
            oem_host_version=form.oem_host_version,
            now=now,
        )
    finally:
        await form.close()
    return JSONResponse(
        {"factory_action": action_json(action)}, status_code=202, headers={"X-Factory-Action": str(action.id)}
    )


@router.get("/{action_id}")
def get_action(
    action_id: int, actor: ActorDep, session: ReadSession, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    """The action and its devices (paged by DSN with `after`)."""
    action, devices = service.action_devices(session, actor, action_id, limit=limit, after=after)
    return {"factory_action": action_json(action), "devices": [device_json(d) for d in devices]}


@router.get("/{action_id}/files/{kind}")
def download(
    action_id: int, kind: str, request: Request, actor: ActorDep, session: ReadSession, pages: ReadSessionsDep
) -> Response:
    """`csv`, `log`, `xml` (reserve: the encrypted DSN bundle) or `failed` (upload lines to fix).

    Streamed as it is read; each OEM has a bounded number of downloads in flight (AFS-429)."""
    return stream_heavy(
        request, actor, lambda: service.action_file(session, actor, action_id, kind, pages=pages)
    )
