"""The ORM tables of every domain, on the lowest floor: any layer may read or write them.

Importing this package imports every table, so that the metadata is complete (migrations, tests).
"""

from devicefactory.db import Base
from devicefactory.storage import StoredFile, StoredFileChunk
from devicefactory.tables.accounts import AuthToken, ModuleModel, Oem, SignInFailures, User
from devicefactory.tables.actions import ActionLine, FactoryAction, ValidateOverlay
from devicefactory.tables.audit import AuditEntry, AuditHead
from devicefactory.tables.devices import Counter, Device, Job, UsedVerifyToken
from devicefactory.tables.idempotency import IdempotentRequest
from devicefactory.tables.keys import FillerReport, MasterKeyRotation, PoolKey
from devicefactory.tables.webhooks import Webhook, WebhookDelivery

__all__ = [
    "ActionLine",
    "AuditEntry",
    "AuditHead",
    "AuthToken",
    "Base",
    "Counter",
    "Device",
    "FactoryAction",
    "FillerReport",
    "IdempotentRequest",
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
    "Webhook",
    "WebhookDelivery",
]
