"""Device serial numbers: ``<prefix><9-digit sequence>``."""

from __future__ import annotations

SEQUENCE_DIGITS = 9
MAX_SEQUENCE = 10**SEQUENCE_DIGITS - 1


def format_dsn(prefix: str, sequence: int) -> str:
    if not 0 < sequence <= MAX_SEQUENCE:
        raise ValueError(f"DSN sequence {sequence} is outside 1..{MAX_SEQUENCE}")
    return f"{prefix}{sequence:0{SEQUENCE_DIGITS}d}"


def dsn_range(prefix: str, first: int, count: int) -> list[str]:
    return [format_dsn(prefix, first + offset) for offset in range(count)]
