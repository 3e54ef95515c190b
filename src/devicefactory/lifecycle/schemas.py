"""The funnel's JSON, and its models for the OpenAPI description (tests check answers
against them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from devicefactory.accounts.schemas import iso
from devicefactory.lifecycle.funnel import Funnel, FunnelGroup, Waiting
from devicefactory.lifecycle.queries import GroupBy

MOMENT = "2016-11-24T10:34:23Z"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OldestWaiting(_Answer):
    """The DSN reserved longest ago that is still only reserved (not manufactured,
    provisioned nor retired)."""

    dsn: str = Field(examples=["AC000W000000001"])
    reserved_at: str = Field(examples=[MOMENT])
    age_seconds: int = Field(description="Seconds since its reserve, at `as_of`", examples=[86400])


class StageCounts(_Answer):
    reserved: int = Field(description="DSNs reserved (every DSN of the group)")
    manufactured: int = Field(description="Of them, manufactured (black box)")
    provisioned: int
    verified: int = Field(description="Of them, verified at end of line (a factory reset clears it)")
    retired: int = Field(description="Of them, retired (never manufactured, key destroyed)")
    waiting: int = Field(description="Of them, still only reserved")


class FunnelGroupAnswer(StageCounts):
    key: str | int | None = Field(
        description="The reserve action's id (`action`), the model (`model`) or the UTC day (`day`)",
        examples=["AY001MTP1"],
    )
    oldest_waiting: OldestWaiting | None


class FunnelAnswer(_Answer):
    group_by: GroupBy
    from_: str | None = Field(alias="from", description="Inclusive bound on reserved_at, as read")
    to: str | None = Field(description="Inclusive bound on reserved_at, as read")
    as_of: str = Field(examples=[MOMENT])
    groups: list[FunnelGroupAnswer]
    totals: StageCounts
    oldest_waiting: OldestWaiting | None = Field(description="The oldest of every group")
    truncated: bool = Field(description="True when there were more than 1000 groups (narrow from/to)")


def _waiting_json(waiting: Waiting | None) -> dict[str, Any] | None:
    if waiting is None:
        return None
    return {"dsn": waiting.dsn, "reserved_at": iso(waiting.reserved_at), "age_seconds": waiting.age_seconds}


def _group_json(group: FunnelGroup) -> dict[str, Any]:
    counts = group.counts
    return {
        "key": group.key,
        "reserved": counts.reserved,
        "manufactured": counts.manufactured,
        "provisioned": counts.provisioned,
        "verified": counts.verified,
        "retired": counts.retired,
        "waiting": counts.waiting,
        "oldest_waiting": _waiting_json(group.oldest_waiting),
    }


def funnel_json(funnel: Funnel) -> dict[str, Any]:
    return {
        "group_by": funnel.group_by.value,
        "from": iso(funnel.low) if funnel.low else None,
        "to": iso(funnel.high) if funnel.high else None,
        "as_of": iso(funnel.as_of),
        "groups": [_group_json(group) for group in funnel.groups],
        "totals": funnel.totals,
        "oldest_waiting": _waiting_json(funnel.oldest_waiting),
        "truncated": funnel.truncated,
    }
