"""Every ORM class, imported once so that the metadata is complete (migrations, tests)."""

from devicefactory.accounts.models import AuthToken, ModuleModel, Oem, User
from devicefactory.actions.models import ActionLine, FactoryAction, ValidateOverlay
from devicefactory.db import Base
from devicefactory.devices.models import Counter, Device, Job
from devicefactory.keys.models import PoolKey

__all__ = [
    "ActionLine",
    "AuthToken",
    "Base",
    "Counter",
    "Device",
    "FactoryAction",
    "Job",
    "ModuleModel",
    "Oem",
    "PoolKey",
    "User",
    "ValidateOverlay",
]
