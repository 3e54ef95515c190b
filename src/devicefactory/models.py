"""Every ORM class, imported once so that the metadata is complete (migrations, tests)."""

from devicefactory.accounts.models import AuthToken, ModuleModel, Oem, SignInFailures, User
from devicefactory.actions.models import ActionLine, FactoryAction, ValidateOverlay
from devicefactory.db import Base
from devicefactory.devices.models import Counter, Device, Job, UsedVerifyToken
from devicefactory.keys.models import FillerReport, PoolKey

__all__ = [
    "ActionLine",
    "AuthToken",
    "Base",
    "Counter",
    "Device",
    "FactoryAction",
    "FillerReport",
    "Job",
    "ModuleModel",
    "Oem",
    "PoolKey",
    "SignInFailures",
    "UsedVerifyToken",
    "User",
    "ValidateOverlay",
]
