"""Every ORM class, imported once so that the metadata is complete (migrations, tests)."""

from devicefactory.accounts.models import AuthToken, ModuleModel, Oem, User
from devicefactory.db import Base

__all__ = ["AuthToken", "Base", "ModuleModel", "Oem", "User"]
