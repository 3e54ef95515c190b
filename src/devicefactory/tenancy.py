"""The tenant wall for factory actions, in one place (SPEC §3): every query of actions, and
every device search by action, goes through ``visible_actions``. (The wall for devices is
``devices.queries.reachable``: who may view, manufacture or provision a device.)"""

from __future__ import annotations

from sqlalchemy import ColumnElement, true

from devicefactory.accounts.policy import Actor
from devicefactory.tables.actions import FactoryAction


def visible_actions(actor: Actor) -> ColumnElement[bool]:
    """An OEM's own actions, or all of them for Ayla::Admin."""
    return true() if actor.is_platform_admin else FactoryAction.oem_id == actor.oem_id
