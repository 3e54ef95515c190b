"""Roles and who may do what: the one place every endpoint asks."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from devicefactory.errors import Forbidden


class Role(enum.StrEnum):
    MODULE_MANUFACTURER = "OEM::ModuleManufacturer"
    MODULE_OEM_MANUFACTURER = "OEM::ModuleOEMManufacturer"
    SOFTWARE_OEM_MANUFACTURER = "OEM::SoftwareOEMManufacturer"
    OEM_ADMIN = "OEM::Admin"
    AYLA_ADMIN = "Ayla::Admin"
    # Reads its OEM's devices and actions (CSV and LOG files), exports; changes nothing.
    OEM_VIEWER = "OEM::Viewer"


class ModelKind(enum.StrEnum):
    BLACK_BOX = "black_box"
    WHITE_BOX = "white_box"


@dataclass(frozen=True, slots=True)
class Actor:
    """The signed-in user a request acts for."""

    user_id: int
    email: str
    role: Role
    oem_id: str | None
    module_manufacturer: bool = False

    @property
    def is_platform_admin(self) -> bool:
        return self.role is Role.AYLA_ADMIN

    @property
    def read_only(self) -> bool:
        """OEM::Viewer: sees what its OEM's other roles see, changes nothing (SPEC §13)."""
        return self.role is Role.OEM_VIEWER

    @property
    def sees_secrets(self) -> bool:
        """Secret device fields (``wifi_setup_key``) are shown; a viewer reads ``****``."""
        return not self.read_only

    def may_download(self, kind: str) -> bool:
        """Action files: a viewer gets CSV and LOG, never the XML bundle (the DSNs' keys)
        nor the failed upload lines (raw lines carry wifi_setup_key)."""
        return not self.read_only or kind in ("csv", "log")

    @property
    def acts_as_module_manufacturer(self) -> bool:
        # AFS 2.2 table 2: an OEM::Admin of a module-manufacturer OEM acts as one.
        return self.role is Role.MODULE_MANUFACTURER or (
            self.role is Role.OEM_ADMIN and self.module_manufacturer
        )

    @property
    def acts_as_module_oem(self) -> bool:
        return self.role is Role.MODULE_OEM_MANUFACTURER or (
            self.role is Role.OEM_ADMIN and not self.module_manufacturer
        )

    @property
    def acts_as_software_oem(self) -> bool:
        return self.role is Role.SOFTWARE_OEM_MANUFACTURER or (
            self.role is Role.OEM_ADMIN and not self.module_manufacturer
        )

    def reservable_kinds(self) -> frozenset[ModelKind]:
        if self.is_platform_admin:
            return frozenset(ModelKind)
        kinds = set()
        if self.acts_as_module_manufacturer:
            kinds.add(ModelKind.BLACK_BOX)
        if self.acts_as_software_oem:
            kinds.add(ModelKind.WHITE_BOX)
        return frozenset(kinds)

    def provisionable_kinds(self) -> frozenset[ModelKind]:
        if self.is_platform_admin:
            return frozenset(ModelKind)
        kinds = set()
        if self.acts_as_module_oem:
            kinds.add(ModelKind.BLACK_BOX)
        if self.acts_as_software_oem:
            kinds.add(ModelKind.WHITE_BOX)
        return frozenset(kinds)

    @property
    def may_reserve(self) -> bool:
        return bool(self.reservable_kinds())

    @property
    def may_manufacture(self) -> bool:
        return self.is_platform_admin or self.acts_as_module_manufacturer

    @property
    def may_provision(self) -> bool:
        return bool(self.provisionable_kinds())

    @property
    def may_manage_users(self) -> bool:
        return self.is_platform_admin or self.role is Role.OEM_ADMIN

    @property
    def may_factory_reset(self) -> bool:
        return self.is_platform_admin or self.role is Role.OEM_ADMIN

    def may_upload(self, action_type: str) -> bool:
        if action_type == "manufacture":
            return self.may_manufacture
        if action_type == "provision":
            return self.may_provision
        return False

    def may_assign_role(self, role: Role) -> bool:
        """OEM admins hand out any OEM role but never the platform's."""
        if self.is_platform_admin:
            return True
        return self.role is Role.OEM_ADMIN and role is not Role.AYLA_ADMIN


def may_manage_user(actor: Actor, user_oem_id: str | None) -> bool:
    """Ayla::Admin manages every user; an OEM::Admin the users of its own OEM (§3)."""
    if actor.is_platform_admin:
        return True
    return actor.role is Role.OEM_ADMIN and user_oem_id is not None and user_oem_id == actor.oem_id


def may_deactivate(actor: Actor, user_id: int) -> bool:
    """Nobody deactivates their own account: the last admin could lock everyone out."""
    return actor.user_id != user_id


def require(allowed: bool, message: str | None = None) -> None:
    """Raise AFS-403 unless the role allows the operation."""
    if not allowed:
        raise Forbidden(message) if message else Forbidden()


def require_platform_admin(actor: Actor) -> None:
    require(actor.is_platform_admin, "Forbidden: only Ayla::Admin may do this")
