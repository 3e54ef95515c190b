"""``python -m bench`` (``make bench``): every benchmark in order, a summary, results/latest.json."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import audit, export, isolation, keygen, machine, manufacture, reserve, scale, search, upload
from bench.report import RESULTS_DIR, write_json

BENCHMARKS: list[tuple[str, Callable[[], dict[str, Any]]]] = [
    ("keygen", keygen.run),
    ("reserve", reserve.run),
    ("manufacture", manufacture.run),
    ("upload", upload.run),
    ("audit", audit.run),
    ("search", search.run),
    ("export", export.run),
    ("isolation", isolation.run),
    ("scale", scale.run),
]


def run_all() -> dict[str, Any]:
    """Run each benchmark, noting its duration and the machine load around it."""
    results: dict[str, Any] = {}
    for name, run in BENCHMARKS:
        print(f"== {name}", flush=True)
        load_before, started = os.getloadavg()[0], time.perf_counter()
        results[name] = run()
        results[name]["seconds"] = round(time.perf_counter() - started, 1)
        results[name]["load_average_1min"] = [load_before, os.getloadavg()[0]]
    return results


def summary(results: dict[str, Any]) -> str:
    """A fixed-width table of every check."""
    rows = [("benchmark", "figure", "value", "target", "result")]
    for name, result in results.items():
        for check in result["checks"]:
            unit = f" {check['unit']}" if check["unit"] else ""
            sign = ">=" if check["higher_is_better"] else "<="
            verdict = "PASS" if check["passed"] else "FAIL"
            rows.append(
                (
                    name,
                    check["name"],
                    f"{check['value']:.2f}{unit}",
                    f"{sign} {check['target']:g}{unit}",
                    verdict,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main() -> None:
    """Describe the machine, run everything, print the summary, write the JSON."""
    started = datetime.now(UTC)
    info = machine.describe()
    print(f"machine: {info['cpus']} x {info['cpu_model']}, Python {info['python']}, SQLite {info['sqlite']}")
    results = run_all()
    print("\n" + summary(results))
    document = {"started": started.isoformat(timespec="seconds"), "machine": info, "results": results}
    path = RESULTS_DIR / "latest.json"
    write_json(path, document)
    # Every run is kept too, so docs/performance.md can quote medians over runs.
    write_json(RESULTS_DIR / "history" / f"{started:%Y%m%dT%H%M%SZ}.json", document)
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
