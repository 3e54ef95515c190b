"""Prometheus metrics: request counters and latencies, plus gauges read from the database."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

GaugeReader = Callable[[], Iterable[Metric]]


class Metrics:
    """One registry per app, so that several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "devicefactory_http_requests_total",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "devicefactory_http_request_duration_seconds",
            "HTTP request latency by method and route.",
            ["method", "route"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )

        self.limited = Counter(
            "devicefactory_limited_requests_total",
            "Requests refused with 429 AFS-429, by limit.",
            ["limit"],
            registry=self.registry,
        )
        self.reserves = Counter(
            "devicefactory_reserves_total",
            "Successful reserves, by OEM (platform: the platform's own).",
            ["oem"],
            registry=self.registry,
        )

    def refused(self, limit: str) -> None:
        self.limited.labels(limit).inc()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def add_database_gauges(self, reader: GaugeReader) -> None:
        self.registry.register(_ReaderCollector(reader))


class _ReaderCollector(Collector):
    def __init__(self, reader: GaugeReader) -> None:
        self.reader = reader

    def collect(self) -> Iterable[Metric]:
        return list(self.reader())
