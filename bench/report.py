"""Figures, targets and percentiles shared by every benchmark."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Check:
    """One figure compared with its target."""

    name: str
    value: float
    target: float
    unit: str = ""
    higher_is_better: bool = True

    @property
    def passed(self) -> bool:
        """Whether the value meets the target."""
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def target_text(self) -> str:
        """The target as printed, e.g. '>= 0.35' or '<= 15 ms'."""
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {self.target:g}{' ' + self.unit if self.unit else ''}"

    def verdict(self) -> str:
        """PASS or FAIL."""
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        """The check for the JSON results, with its verdict."""
        return {**asdict(self), "passed": self.passed}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between samples."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else math.nan


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_alone_run(name: str, result: dict[str, Any], started: datetime) -> Path:
    """Keep the results of one benchmark run alone (``python -m bench.<name>``) in results/history/.

    The document has the shape of a full run's, with only this benchmark in it.
    """
    from bench import machine  # machine imports the server helpers; only needed here

    document = {"started": started.isoformat(timespec="seconds"), "machine": machine.describe()}
    document["results"] = {name: result}
    path = RESULTS_DIR / "history" / f"{started:%Y%m%dT%H%M%SZ}-{name}.json"
    write_json(path, document)
    return path
