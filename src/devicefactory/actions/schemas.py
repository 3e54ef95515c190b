"""JSON shapes of factory actions."""

from __future__ import annotations

from typing import Any

from devicefactory.accounts.schemas import iso
from devicefactory.actions.outcomes import OUTCOMES, outcome_key
from devicefactory.tables.actions import ActionType, FactoryAction

FILES = {ActionType.RESERVE: ("csv", "log", "xml")}
UPLOAD_FILES = ("csv", "log", "failed")


def action_json(action: FactoryAction) -> dict[str, Any]:
    kinds = FILES.get(ActionType(action.type), UPLOAD_FILES)
    return {
        "id": action.id,
        "type": action.type,
        "status": action.status,
        "count": action.count,
        "oem_id": action.oem_id,
        "model": action.model,
        "created_by": action.created_by,
        "created_at": iso(action.created_at),
        "started_at": iso(action.started_at),
        "finished_at": iso(action.finished_at),
        "message": action.message,
        "upload": None
        if action.type == ActionType.RESERVE
        else {
            "type": action.upload_type,
            "validate_only": action.validate_only,
            "file_name": action.file_name,
            "format": action.file_format,
        },
        "progress": {
            "lines_total": action.lines_total,
            "lines_done": action.lines_done,
            # A validate "would apply" what submit applies (it never says "applied").
            **{
                outcome_key(outcome, validate_only=action.validate_only): getattr(action, outcome)
                for outcome in OUTCOMES
            },
        },
        "files": {kind: f"/devicefactory/v1/factory_actions/{action.id}/files/{kind}" for kind in kinds},
    }
