"""Factory actions: list, detail with devices, file downloads, uploads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from devicefactory.accounts.access import ActorDep
from devicefactory.actions import bodies, service, uploads
from devicefactory.actions.schemas import action_json
from devicefactory.devices.schemas import device_json
from devicefactory.errors import (
    Forbidden,
    MissingAttributes,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
)
from devicefactory.http.bodies import parse_upload_form
from devicefactory.http.openapi import afs_errors, request_body
from devicefactory.http.streaming import stream_heavy
from devicefactory.http.transaction import (
    NowDep,
    ReadSession,
    ReadSessionsDep,
    SettingsDep,
    TransactionalRoute,
    WriteSession,
    record_event,
)
from devicefactory.tables.actions import ActionStatus, ActionType

DOWNLOAD = "factory_actions.download"  # the audit log's name for a file download

router = APIRouter(
    prefix="/devicefactory/v1/factory_actions",
    tags=["factory actions"],
    route_class=TransactionalRoute,
)


@router.get(
    "",
    response_model=None,
    responses={
        200: {"model": bodies.ActionPage, "description": "A page of actions, newest first"},
        **afs_errors(
            Unauthorized(),
            ValidationFailed.of([f"type must be one of {', '.join(ActionType)}"]),
            ValidationFailed.of([f"status must be one of {', '.join(ActionStatus)}"]),
            ValidationFailed.of(["from 24/11/2016 is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)"]),
            ValidationFailed.of([f"limit must be between 1 and {service.MAX_PAGE}"]),
            ValidationFailed.of(
                ["cursor: Input should be a valid integer, unable to parse string as an integer"]
            ),
        ),
    },
)
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


@router.post(
    "",
    status_code=202,
    response_model=None,
    responses={
        202: {
            "model": bodies.ActionEnvelope,
            "description": "The action, queued; its id is also in the `X-Factory-Action` header",
            "headers": {
                "X-Factory-Action": {"description": "The action's id", "schema": {"type": "integer"}}
            },
        },
        **afs_errors(
            Unauthorized(),
            Forbidden(),
            PayloadTooLarge(100 * 1024 * 1024),
            ValidationFailed.of(["the upload must be multipart/form-data with a file field"]),
            ValidationFailed.of([f"type must be one of {', '.join(uploads.UPLOAD_TYPES)}"]),
            ValidationFailed.of(["validate_only must be true or false"]),
            ValidationFailed.of(["the file holds no device lines"]),
            ValidationFailed.of(["the file holds more than 1000000 device lines"]),
            MissingAttributes(["file"]),
        ),
    },
    openapi_extra=request_body(bodies.UploadForm, media_type="multipart/form-data"),
)
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


@router.get(
    "/{action_id}",
    response_model=None,
    responses={
        200: {"model": bodies.ActionDetail, "description": "The action and a page of its devices"},
        **afs_errors(
            Unauthorized(),
            NotFound("Factory action 42 not found"),
            ValidationFailed.of([f"limit must be between 1 and {service.MAX_PAGE}"]),
        ),
    },
)
def get_action(
    action_id: int, actor: ActorDep, session: ReadSession, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    """The action and its devices (paged by DSN with `after`)."""
    action, devices = service.action_devices(session, actor, action_id, limit=limit, after=after)
    return {"factory_action": action_json(action), "devices": [device_json(d, actor) for d in devices]}


@router.get(
    "/{action_id}/files/{kind}",
    response_model=None,
    responses={
        200: {
            "description": "The file, streamed as an attachment",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("text/csv", "text/plain", "application/pkcs7-mime")
            },
        },
        **afs_errors(
            Unauthorized(),
            NotFound("Factory action 42 not found"),
            NotFound("Factory action 42 has no xml file"),
            NotFound("Factory action 42 has no bundle: its OEM has no factory certificate"),
            TooManyRequests(
                "file downloads, searches and exports in flight for your OEM: at most 4 at once", 2
            ),
            ValidationFailed.of(
                ["action_id: Input should be a valid integer, unable to parse string as an integer"]
            ),
        ),
    },
)
def download(
    action_id: int, kind: str, request: Request, actor: ActorDep, session: ReadSession, pages: ReadSessionsDep
) -> Response:
    """`csv`, `log`, `xml` (reserve: the encrypted DSN bundle) or `failed` (upload lines to fix).

    Streamed as it is read; each OEM has a bounded number of downloads in flight (AFS-429).
    Each download is an audit entry, written before the file is sent."""

    def opened() -> service.ActionFile:
        file = service.action_file(session, actor, action_id, kind, pages=pages)
        record_event(request, DOWNLOAD, {"action_id": action_id, "kind": kind})
        return file

    return stream_heavy(request, actor, opened)
