"""What became of each line of an upload, and how each outcome is worded (§7, §11)."""

from __future__ import annotations

from dataclasses import dataclass

# Every line gets one of these; the action counts each.
OUTCOMES = ("applied", "identical", "conflict", "invalid", "skipped")
FAILED_OUTCOMES = ("conflict", "invalid")
# A validate applies nothing: what submit would apply it reports as "would apply".
WOULD_APPLY = "would apply"


@dataclass(frozen=True)
class LineOutcome:
    line_no: int
    raw: str
    dsn: str | None
    outcome: str  # one of OUTCOMES
    error_code: str | None = None
    message: str | None = None
    changes: str | None = None
    # The device's model and status after the line, when the uploader may see the device.
    model: str | None = None
    device_status: str | None = None


def outcome_label(outcome: str, *, validate_only: bool) -> str:
    """The outcome as files, pages and the client show it."""
    return WOULD_APPLY if validate_only and outcome == "applied" else outcome


def outcome_key(outcome: str, *, validate_only: bool) -> str:
    """The outcome as a JSON key or CSS name (``would_apply``)."""
    return outcome_label(outcome, validate_only=validate_only).replace(" ", "_")


def is_failure(outcome: str) -> bool:
    return outcome in FAILED_OUTCOMES
