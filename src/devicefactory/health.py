"""Readiness (SPEC §12): whether this process should be sent traffic. ``/healthz`` is the
liveness probe (the database answers); ``/readyz`` also wants the schema at the code's
migration head and the key pool above its low-water mark."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from devicefactory.config import Settings
from devicefactory.keys import queries as key_queries
from devicefactory.migrate import current_revision, head_revision


def low_water_mark(settings: Settings) -> int:
    return (
        settings.key_pool_target // 10 if settings.key_pool_low_water is None else settings.key_pool_low_water
    )


def not_ready_because(factory: sessionmaker[Session], settings: Settings) -> list[str]:
    """Why this process is not ready; empty when it is."""
    try:
        with factory() as session:
            revision = current_revision(session.connection())
            pool = key_queries.pool_size(session)
    except Exception as error:  # whatever the driver raises: the database does not answer
        return [f"the database does not answer ({type(error).__name__})"]
    reasons = []
    head = head_revision()
    if revision != head:
        reasons.append(f"the schema is at revision {revision}, not {head}: run devicefactory db upgrade")
    low_water = low_water_mark(settings)
    if pool < low_water:
        reasons.append(f"the key pool holds {pool} keys, under its low-water mark of {low_water}")
    return reasons
