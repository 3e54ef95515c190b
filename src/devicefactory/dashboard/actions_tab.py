"""The Factory Actions tab: the action list, RESERVE DSNS, uploads, progress and files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from devicefactory.accounts import service as accounts
from devicefactory.accounts.names import oem_names
from devicefactory.accounts.policy import Actor, ModelKind
from devicefactory.actions import service, uploads
from devicefactory.dashboard import csrf, forms
from devicefactory.dashboard.pages import DashboardRoute, redirect, render
from devicefactory.dashboard.session import PREFIX, CheckedForm, DashboardActor, session_token
from devicefactory.devices import related
from devicefactory.devices import service as devices
from devicefactory.errors import MissingAttributes, ValidationFailed
from devicefactory.http.streaming import stream_heavy
from devicefactory.http.transaction import (
    NowDep,
    ReadSession,
    ReadSessionsDep,
    SettingsDep,
    WriteSession,
    record_event,
)
from devicefactory.tables.accounts import ModuleModel, Oem
from devicefactory.tables.actions import ActionLine, ActionStatus, ActionType, FactoryAction

router = APIRouter(prefix=PREFIX, route_class=DashboardRoute, include_in_schema=False)

LINES_SHOWN = 500
# The list's total is counted up to here: "more than 10,000" past it (a bounded query).
COUNT_BOUND = 10_000
FINAL = (ActionStatus.SUCCESS, ActionStatus.FAILURE)


def action_files(actor: Actor) -> Callable[[FactoryAction], list[tuple[str, str]]]:
    """The files an action offers this user, as the service says (for the templates)."""
    return partial(service.offered_files, actor)


def reservable_models(session: Session, actor: Actor) -> list[ModuleModel]:
    kinds = actor.reservable_kinds()
    return [model for model in accounts.list_models(session) if ModelKind(model.kind) in kinds]


def upload_lines(
    session: Session, actor: Actor, action_id: int, *, problems_only: bool
) -> tuple[FactoryAction, Sequence[ActionLine]]:
    """The action (tenant-checked by the service) and the outcomes of its first lines."""
    action = service.get_action(session, actor, action_id)
    if action.type == ActionType.RESERVE or action.status not in FINAL:
        return action, []
    return service.action_lines(session, actor, action_id, failed_only=problems_only, limit=LINES_SHOWN)


@router.get("")
def actions_page(request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    """The landing page: the OEM's factory actions, newest first."""
    error: ValidationFailed | None = None
    actions: Sequence[FactoryAction] = []
    filters = forms.ActionFilters()
    try:
        filters = forms.action_filters(request.query_params)
        actions = service.search_actions(
            session,
            actor,
            type_=filters.type,
            status=filters.status,
            created_by=filters.created_by,
            created_from=filters.created_from,
            created_to=filters.created_to,
            cursor=filters.cursor,
            limit=forms.ACTIONS_PAGE,
        )
    except ValidationFailed as failed:
        error = failed
    done_id = forms.positive_int(request.query_params.get("done"))
    done = service.get_action(session, actor, done_id) if done_id else None
    oems: Sequence[Oem] = accounts.list_oems(session, actor) if actor.is_platform_admin else []
    total = None if error else _count_actions(session, actor, filters)
    return render(
        request,
        "actions.html",
        {
            "tab": "actions",
            "actions": actions,
            "filters": filters,
            "error": error,
            "done": done,
            "next_cursor": actions[-1].id if len(actions) == forms.ACTIONS_PAGE else None,
            "models": reservable_models(session, actor) if actor.may_reserve else [],
            "oems": oems,
            "action_files": action_files(actor),
            "total": total,
            "count_bound": COUNT_BOUND,
            "done_range": reserved_range(session, actor, done) if done else None,
            "oem_names": oem_names(session, [action.oem_id for action in actions]),
            "types": forms.ACTION_TYPES,
            "statuses": forms.ACTION_STATUSES,
        },
        status_code=error.status_code if error else 200,
    )


def _count_actions(session: Session, actor: Actor, filters: forms.ActionFilters) -> int:
    return service.count_actions(
        session,
        actor,
        type_=filters.type,
        status=filters.status,
        created_by=filters.created_by,
        created_from=filters.created_from,
        created_to=filters.created_to,
        bound=COUNT_BOUND + 1,
    )


def reserved_range(session: Session, actor: Actor, action: FactoryAction) -> related.DsnRange | None:
    """The first and last DSN of a reservation (None for other actions)."""
    if action.type != ActionType.RESERVE:
        return None
    return related.reserved_range(session, actor, action.id)


@router.post("/actions/reserve")
def reserve(
    actor: DashboardActor, form: CheckedForm, session: WriteSession, settings: SettingsDep, now: NowDep
) -> Response:
    """RESERVE DSNS: one contiguous range with a key pair each; then the bundle is offered."""
    body = {"model": form.get("model"), "count": form.get("count")}
    if actor.is_platform_admin and form.get("oem_id"):
        body["oem_id"] = form.get("oem_id")
    reservation = devices.reserve_devices(
        session,
        actor,
        body=body,
        now=now,
        dsn_prefix=settings.dsn_prefix,
        share=devices.KeyPoolShare.of(settings),
    )
    return redirect(f"{PREFIX}?done={reservation.action_id}")


@router.post("/actions/upload")
async def upload(
    request: Request, actor: DashboardActor, session: WriteSession, settings: SettingsDep, now: NowDep
) -> Response:
    """A factory log or CSV: the action is queued and worked in the background."""
    form = await request.form(max_files=1, max_fields=16)
    try:
        csrf.check(request, form.get(csrf.FIELD), session_token(request))
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            raise MissingAttributes(["file"])
        version = str(form.get("oem_host_version") or "").strip()
        action = await run_in_threadpool(
            uploads.create_upload_action,
            session,
            actor,
            upload_type=str(form.get("type") or ""),
            validate_only=form.get("validate_only") == "true",
            file_name=file.filename,
            stream=file.file,
            store=request.app.state.file_store,
            max_lines=settings.max_upload_lines,
            oem_host_version=version or None,
            now=now,
        )
    finally:
        await form.close()
    return redirect(f"{PREFIX}/actions/{action.id}")


def lines_filter(choice: str | None, action: FactoryAction) -> bool:
    """Whether the lines shown are the problems only: as chosen, else when there are any
    (a failed validate opens on what failed, not on every line)."""
    if choice in ("problems", "all"):
        return choice == "problems"
    return action.status in FINAL and action.conflict + action.invalid > 0


def _action_context(request: Request, session: Session, actor: Actor, action_id: int) -> dict[str, object]:
    choice = request.query_params.get("lines")
    action = service.get_action(session, actor, action_id)
    problems_only = lines_filter(choice, action)
    action, lines = upload_lines(session, actor, action_id, problems_only=problems_only)
    total = max(action.lines_total, 1)
    return {
        "tab": "actions",
        "action": action,
        "lines": lines,
        "lines_shown": LINES_SHOWN,
        "problems_only": problems_only,
        "lines_choice": choice if choice in ("problems", "all") else None,
        "problems": action.conflict + action.invalid,
        "reserved": reserved_range(session, actor, action),
        "oem_names": oem_names(session, [action.oem_id]),
        "final": action.status in FINAL,
        "percent": 100 if action.status in FINAL else min(99, action.lines_done * 100 // total),
        "files": service.offered_files(actor, action),
    }


@router.get("/actions/{action_id}")
def action_page(action_id: int, request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    """One action: its progress while it runs, then its outcome and each line's."""
    return render(request, "action.html", _action_context(request, session, actor, action_id))


@router.get("/actions/{action_id}/live")
def action_live(action_id: int, request: Request, actor: DashboardActor, session: ReadSession) -> Response:
    """The progress panel alone, polled by the page (and the upload dialogs) while the action runs."""
    return render(request, "_action_live.html", _action_context(request, session, actor, action_id))


@router.get("/actions/{action_id}/files/{kind}")
def action_file(
    action_id: int,
    kind: str,
    request: Request,
    actor: DashboardActor,
    session: ReadSession,
    pages: ReadSessionsDep,
) -> Response:
    """CSV, LOG, XML (reserve bundle) or failed lines, with the session cookie (streamed);
    each download is an audit entry, written before the file is sent."""

    def opened() -> service.ActionFile:
        file = service.action_file(session, actor, action_id, kind, pages=pages)
        record_event(request, "factory_actions.download", {"action_id": action_id, "kind": kind})
        return file

    return stream_heavy(request, actor, opened, {"Cache-Control": "no-store"})
