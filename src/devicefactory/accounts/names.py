"""OEM names for display: pages show an OEM by its name, with its id beside it."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from devicefactory.tables.accounts import Oem


def oem_names(session: Session, oem_ids: Iterable[str | None]) -> dict[str, str]:
    """oem_id -> name for the given ids (unknown ids are left out)."""
    wanted = {oem_id for oem_id in oem_ids if oem_id}
    if not wanted:
        return {}
    rows = session.execute(select(Oem.oem_id, Oem.name).where(Oem.oem_id.in_(sorted(wanted)))).all()
    return {row[0]: row[1] for row in rows}
