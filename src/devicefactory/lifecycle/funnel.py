"""The lifecycle funnel (SPEC §13): per group of devices, how many reached each stage, and
how long the oldest DSN still waiting for manufacture has waited.

Groups are the reserve cohort's ``action``, the ``model`` or the UTC ``day`` of the reserve.
``from``/``to`` bound ``reserved_at``, both inclusive, as the DSN View's ``reserved_after``/
``reserved_before`` (a date alone is midnight UTC). The caller sees the devices of its DSN
View (``devices.queries.reachable``): an OEM those it reserved or owns, Ayla::Admin all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from devicefactory.accounts.policy import Actor
from devicefactory.devices.search import parse_moment
from devicefactory.errors import ValidationFailed
from devicefactory.lifecycle import queries
from devicefactory.lifecycle.queries import GroupBy, GroupCounts

MAX_GROUPS = 1000
STAGES = ("reserved", "manufactured", "provisioned", "verified", "retired")


@dataclass(frozen=True)
class Waiting:
    """The DSN reserved longest ago that is still only reserved, and for how long."""

    dsn: str
    reserved_at: datetime
    age_seconds: int


@dataclass(frozen=True)
class FunnelGroup:
    key: str | int | None
    counts: GroupCounts
    oldest_waiting: Waiting | None


@dataclass(frozen=True)
class Funnel:
    group_by: GroupBy
    low: datetime | None
    high: datetime | None
    as_of: datetime
    groups: list[FunnelGroup] = field(default_factory=list)
    truncated: bool = False

    @property
    def totals(self) -> dict[str, int]:
        return {name: sum(getattr(g.counts, name) for g in self.groups) for name in (*STAGES, "waiting")}

    @property
    def oldest_waiting(self) -> Waiting | None:
        waiting = [g.oldest_waiting for g in self.groups if g.oldest_waiting is not None]
        return min(waiting, key=lambda w: (w.reserved_at, w.dsn), default=None)

    @property
    def widest(self) -> int:
        """The largest count of any group (the dashboard's bars are drawn against it)."""
        return max((g.counts.reserved for g in self.groups), default=0)


def funnel_report(session: Session, actor: Actor, params: Mapping[str, str], *, now: datetime) -> Funnel:
    """The funnel of the caller's devices, grouped and bounded as ``params`` say."""
    group_by, low, high = _parse(params)
    counts = queries.group_counts(session, actor, group_by, low=low, high=high, limit=MAX_GROUPS + 1)
    truncated = len(counts) > MAX_GROUPS
    counts = counts[:MAX_GROUPS]
    keys = [c.key for c in counts if c.waiting]
    oldest = {
        o.key: Waiting(o.dsn, o.reserved_at, max(0, int((now - o.reserved_at).total_seconds())))
        for o in queries.oldest_waiting(session, actor, group_by, keys, low=low, high=high)
    }
    groups = [FunnelGroup(c.key, c, oldest.get(c.key)) for c in counts]
    return Funnel(group_by, low, high, now, groups, truncated)


def _parse(params: Mapping[str, str]) -> tuple[GroupBy, datetime | None, datetime | None]:
    failures = [f"{name} is not a parameter of the funnel" for name in params if name not in _PARAMS]
    raw = params.get("group_by", "").strip() or GroupBy.MODEL.value
    if raw not in set(GroupBy):
        failures.append(f"group_by must be one of {', '.join(GroupBy)}")
    bounds: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        value = params.get(name, "").strip()
        bounds[name] = parse_moment(value) if value else None
        if value and bounds[name] is None:
            failures.append(f"{name} {value[:40]} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)")
    if failures:
        raise ValidationFailed.of(failures)
    return GroupBy(raw), bounds["from"], bounds["to"]


_PARAMS = frozenset({"group_by", "from", "to"})
