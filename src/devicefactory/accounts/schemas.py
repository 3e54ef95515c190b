"""JSON shapes of the accounts API."""

from __future__ import annotations

from typing import Any

from devicefactory.accounts.service import IssuedTokens, UserState
from devicefactory.tables.accounts import ModuleModel, Oem, User


def tokens_json(tokens: IssuedTokens) -> dict[str, Any]:
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "expires_in": tokens.expires_in,
        "role": tokens.role,
    }


def oem_json(oem: Oem) -> dict[str, Any]:
    return {
        "oem_id": oem.oem_id,
        "name": oem.name,
        "module_manufacturer": oem.module_manufacturer,
        "reservation_limit": oem.reservation_limit,
        "has_factory_certificate": oem.factory_certificate is not None,
        "created_at": iso(oem.created_at),
    }


def user_json(user: User, *, locked: bool = False) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "oem_id": user.oem_id,
        "created_at": iso(user.created_at),
        "deactivated": user.deactivated_at is not None,
        "locked": locked,
    }


def user_state_json(state: UserState) -> dict[str, Any]:
    return user_json(state.user, locked=state.locked)


def model_json(model: ModuleModel) -> dict[str, Any]:
    return {"name": model.name, "kind": model.kind, "description": model.description}


def iso(value: Any) -> str | None:
    if value is None:
        return None
    text: str = value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text
