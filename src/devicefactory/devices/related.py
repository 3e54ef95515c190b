"""What the dashboard shows around a device or a search: related DSNs, ranges and counts.

Everything here goes through the same tenant walls as the DSN View search: ``reachable``
for devices and ``visible_actions`` (inside the search by action) for actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.devices import queries
from devicefactory.devices.queries import Reach, reachable
from devicefactory.devices.search import parse_search
from devicefactory.devices.service import get_device
from devicefactory.tables.devices import Device

# The seed's jobs dialog lists the other DSNs of the actions that touched a device:
# a few actions, a few DSNs each, and a link to the DSN View for the rest.
RELATED_ACTIONS = 5
RELATED_DSNS = 10


@dataclass(frozen=True)
class RelatedDsns:
    """The other DSNs of one factory action that touched a device."""

    action_id: int
    operation: str
    dsns: tuple[str, ...]
    more: bool


@dataclass(frozen=True)
class DsnRange:
    count: int
    first: str
    last: str


def related_dsns(
    session: Session,
    actor: Actor,
    dsn: str,
    *,
    actions: int | None = None,
    per_action: int | None = None,
) -> list[RelatedDsns]:
    """For the latest actions in the device's jobs: the action's other DSNs (at most ``per_action``)."""
    actions = actions or RELATED_ACTIONS
    per_action = per_action or RELATED_DSNS
    device = get_device(session, actor, dsn)
    operations: dict[int, str] = {}
    for job in reversed(queries.jobs_of(session, actor, device.dsn)):
        if job.action_id is not None and job.action_id not in operations:
            operations[job.action_id] = job.operation
    if device.reserve_action_id is not None:
        operations.setdefault(device.reserve_action_id, "reserve")
    groups = []
    for action_id, operation in list(operations.items())[:actions]:
        search = parse_search({"action_id": str(action_id), "limit": str(per_action + 2)})
        others = [d.dsn for d in queries.search_devices(session, actor, search) if d.dsn != device.dsn]
        if others:
            more = len(others) > per_action
            groups.append(RelatedDsns(action_id, operation, tuple(others[:per_action]), more))
    return groups


def reserved_range(session: Session, actor: Actor, action_id: int) -> DsnRange | None:
    """The DSNs a reserve action made, as the caller may see them: count, first and last."""
    query = select(func.count(), func.min(Device.dsn), func.max(Device.dsn)).where(
        Device.reserve_action_id == action_id, reachable(actor, Reach.VIEW)
    )
    count, first, last = session.execute(query).one()
    return DsnRange(count, first, last) if count else None


def count_devices(session: Session, actor: Actor, params: Mapping[str, str], *, bound: int) -> int:
    """How many devices the DSN View search matches (all pages), counting at most ``bound``."""
    search = parse_search({name: value for name, value in params.items() if name not in ("cursor", "limit")})
    search.limit = bound
    statement = queries.search_statement(session, actor, search).order_by(None)
    return session.scalar(select(func.count()).select_from(statement.subquery())) or 0
