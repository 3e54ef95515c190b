"""Metrics read from the database at scrape time, so they are right across processes."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.counters import KEYS_GENERATED, counter_value
from devicefactory.db import utcnow
from devicefactory.keys import queries
from devicefactory.tables.actions import ActionStatus, FactoryAction


def database_gauges(factory: sessionmaker[Session]) -> Iterable[Metric]:
    with factory() as session:
        size = queries.pool_size(session)
        rate = queries.fill_rate(session, utcnow())
        generated = counter_value(session, KEYS_GENERATED)
        rows = session.execute(select(FactoryAction.status, func.count()).group_by(FactoryAction.status))
        by_status: dict[str, int] = dict(rows.all())
    yield _gauge("devicefactory_key_pool_size", "Key pairs ready in the pool.", size)
    yield _gauge(
        "devicefactory_key_pool_fill_rate",
        "Key pairs per second the running pool fillers make, together.",
        rate,
    )
    total = CounterMetricFamily("devicefactory_keys_generated", "Key pairs generated since the start.")
    total.add_metric([], generated)
    yield total
    actions = GaugeMetricFamily(
        "devicefactory_factory_actions", "Factory actions by status.", labels=["status"]
    )
    for status in ActionStatus:
        actions.add_metric([status.value], by_status.get(status.value, 0))
    yield actions


def _gauge(name: str, documentation: str, value: float) -> Metric:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], value)
    return family
