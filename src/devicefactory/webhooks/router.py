"""Webhooks: register, list, delete; their deliveries, and redelivery (SPEC §13)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from devicefactory.accounts.access import ActorDep
from devicefactory.http.bodies import JsonBody
from devicefactory.http.transaction import NowDep, ReadSession, TransactionalRoute, WriteSession
from devicefactory.webhooks import service
from devicefactory.webhooks.schemas import delivery_json, webhook_json

router = APIRouter(prefix="/devicefactory/v1/webhooks", tags=["webhooks"], route_class=TransactionalRoute)


@router.post("", status_code=201)
def create_webhook(body: JsonBody, actor: ActorDep, session: WriteSession, now: NowDep) -> dict[str, Any]:
    """Register a receiver: `{"url", "events": [...], "secret"}` (OEM::Admin, for its OEM)."""
    return {"webhook": webhook_json(service.create_webhook(session, actor, body=body, now=now))}


@router.get("")
def list_webhooks(actor: ActorDep, session: ReadSession) -> dict[str, Any]:
    """The caller's OEM's webhooks (secrets masked)."""
    return {"webhooks": [webhook_json(hook) for hook in service.list_webhooks(session, actor)]}


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: str, actor: ActorDep, session: WriteSession) -> Response:
    """Delete a webhook and its deliveries."""
    service.delete_webhook(session, actor, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries")
def list_deliveries(
    webhook_id: str, actor: ActorDep, session: ReadSession, before: int | None = None, limit: int = 100
) -> dict[str, Any]:
    """A webhook's deliveries, newest first: status, attempts, response code, next attempt, last error;
    `before` is `next_cursor` of the page before."""
    deliveries = service.list_deliveries(session, actor, webhook_id, before=before, limit=limit)
    next_cursor = deliveries[-1].seq if len(deliveries) == limit else None
    return {"deliveries": [delivery_json(d) for d in deliveries], "next_cursor": next_cursor}


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver(webhook_id: str, delivery_id: str, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Queue a delivery again (same delivery id), to be sent as soon as a sender is free."""
    return {"delivery": delivery_json(service.redeliver(session, actor, webhook_id, delivery_id))}


# SPEC §13 names redelivery ".../deliveries/:id/redeliver": the delivery's id is unique, so it
# is also accepted without its webhook's, under /webhooks and under /devicefactory/v1.
deliveries_router = APIRouter(prefix="/devicefactory/v1", tags=["webhooks"], route_class=TransactionalRoute)


@router.post("/deliveries/{delivery_id}/redeliver", status_code=202)
@deliveries_router.post("/deliveries/{delivery_id}/redeliver", status_code=202)
def redeliver_by_id(delivery_id: str, actor: ActorDep, session: WriteSession) -> dict[str, Any]:
    """Queue a delivery again, named by its id alone (`X-DeviceFactory-Delivery`)."""
    return {"delivery": delivery_json(service.redeliver_by_id(session, actor, delivery_id))}
