"""Every ORM class, imported once so that the metadata is complete (migrations, tests)."""

from devicefactory.accounts.models import AuthToken, ModuleModel, Oem, SignInFailures, User
from devicefactory.actions.models import ActionLine, FactoryAction, ValidateOverlay
from devicefactory.db import Base
from devicefactory.devices.models import Counter, Device, Job, UsedVerifyToken
from devicefactory.keys.models import FillerReport, MasterKeyRotation, PoolKey
from devicefactory.storage import StoredFile, StoredFileChunk

__all__ = [
    "ActionLine",
    "AuthToken",
    "Base",
    "Counter",
    "Device",
    "FactoryAction",
    "FillerReport",
    "Job",
    "MasterKeyRotation",
    "ModuleModel",
    "Oem",
    "PoolKey",
    "SignInFailures",
    "StoredFile",
    "StoredFileChunk",
    "UsedVerifyToken",
    "User",
    "ValidateOverlay",
]
