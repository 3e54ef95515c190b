"""JSON shapes of the anomalies report (SPEC §13); the models are also its OpenAPI schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["upload", "validate", "api"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Evidence(_Answer):
    """Where a refusal was recorded: an upload line (action and line) or an API call's job."""

    source: Source = Field(description="`upload` line, `validate` line (nothing applied) or `api` call")
    action_id: int | None = Field(description="The factory action of the line; null for an API call")
    line_no: int | None = Field(description="The line of the upload; null for an API call")
    outcome: str | None = Field(description="The line's outcome (`invalid`, `conflict`); null for a call")
    job_ids: list[int] = Field(description="The device's failed jobs that recorded it (none for a validate)")
    at: str | None = Field(description="When (ISO 8601 UTC): the job's time, else the action's")
    created_by: str | None = Field(description="Who sent the call or uploaded the file (email)")
    oem_id: str | None = Field(description="The caller's OEM (null: the platform)")
    error_code: str | None = Field(examples=["AFS-600"])
    message: str | None


class Identifier(_Answer):
    field: Literal["mac", "hwsig", "mac or hwsig"]
    value: str | None = Field(
        description="The value claimed; null when it was not recorded (a call refused before migration 0017)"
    )
    held_by: str | None = Field(
        description="The DSN that holds the value, when the caller may see that device; else null"
    )


class SharedIdentifier(_Answer):
    """A MAC or hwsig claimed by a DSN while another device held it (the claim was refused)."""

    dsn: str = Field(description="The DSN that claimed the value")
    identifiers: list[Identifier]
    dsns: list[str] = Field(
        description="Every DSN (that the caller may see) that claimed or holds the values"
    )
    evidence: Evidence


class Change(_Answer):
    field: str
    original: str | None = Field(description="What the device holds (null: nothing), where recorded")
    claimed: str | None = Field(description="What the claim said, where recorded")


class ConflictingClaim(_Answer):
    """A DSN that was claimed again with other factory data than it holds."""

    dsn: str
    operation: Literal["manufacture", "provision"]
    changes: list[Change] = Field(description="Each field that differed (an API call records none)")
    current: dict[str, str | None] | None = Field(
        description="The device's manufacture data now, when the caller may see the device"
    )
    evidence: Evidence


class FailedVerify(_Answer):
    """A verify that was refused: a token not made with the device's key, a replay, ..."""

    dsn: str
    kind: Literal["wrong_key", "other_device", "replay", "stale", "other"] = Field(
        description="`wrong_key`: not encrypted with this device's key (a cloned module); "
        "`other_device`: made for another DSN; `replay`: a token already used; "
        "`stale`: its time is not within 5 minutes; `other`: malformed"
    )
    job_id: int
    at: str | None
    created_by: str | None
    oem_id: str | None = Field(description="The caller's OEM (null: the platform, or unknown)")
    error_code: str | None
    message: str | None


class SharedIdentifiers(_Answer):
    items: list[SharedIdentifier]
    next_cursor: str | None = Field(description="`identifiers_cursor` of the next page; null at the end")


class ConflictingClaims(_Answer):
    items: list[ConflictingClaim]
    next_cursor: str | None = Field(description="`conflicts_cursor` of the next page; null at the end")


class FailedVerifies(_Answer):
    items: list[FailedVerify]
    next_cursor: str | None = Field(description="`verifies_cursor` of the next page; null at the end")


class AnomalyReport(_Answer):
    """Each list newest first, a page at a time; a list not asked for (`only`) is null."""

    shared_identifiers: SharedIdentifiers | None
    conflicting_claims: ConflictingClaims | None
    failed_verifies: FailedVerifies | None
