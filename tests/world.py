"""A world of OEMs, users of every role and models, built through the services."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Role
from devicefactory.db import session_scope
from devicefactory.keys.crypto import make_self_signed_certificate

PASSWORD = "correct horse battery"
_CERTIFICATE: tuple[bytes, bytes] | None = None


def factory_certificate() -> tuple[bytes, bytes]:
    """One certificate for every test OEM (RSA keygen is slow)."""
    global _CERTIFICATE
    if _CERTIFICATE is None:
        _CERTIFICATE = make_self_signed_certificate("test factory")
    return _CERTIFICATE


# name -> (role, which OEM)
USERS = {
    "ayla": (Role.AYLA_ADMIN, None),
    "mm": (Role.MODULE_MANUFACTURER, "modules"),
    "mm_admin": (Role.OEM_ADMIN, "modules"),
    "mm2": (Role.MODULE_MANUFACTURER, "modules2"),
    "mom": (Role.MODULE_OEM_MANUFACTURER, "products"),
    "product_admin": (Role.OEM_ADMIN, "products"),
    "mom2": (Role.MODULE_OEM_MANUFACTURER, "products2"),
    "som": (Role.SOFTWARE_OEM_MANUFACTURER, "gateways"),
    "gateway_admin": (Role.OEM_ADMIN, "gateways"),
    "som2": (Role.SOFTWARE_OEM_MANUFACTURER, "gateways2"),
}
OEMS = {
    "modules": True,
    "modules2": True,
    "products": False,
    "products2": False,
    "gateways": False,
    "gateways2": False,
}


@dataclass
class World:
    client: TestClient
    oem_ids: dict[str, str]
    emails: dict[str, str]
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self._tokens:
            self._tokens[user] = sign_in(self.client, self.emails[user])["access_token"]
        return self._tokens[user]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"auth_token {self.token(user)}"}


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/users/sign_in.json", json={"user": {"email": email, "password": password}})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def build_world(client: TestClient, factory: sessionmaker[Session], *, certificates: bool = True) -> World:
    certificate = factory_certificate()[0].decode() if certificates else None
    with session_scope(factory) as session:
        oem_ids = {
            name: accounts.create_oem(
                session, name=name, module_manufacturer=mm, certificate_pem=certificate
            ).oem_id
            for name, mm in OEMS.items()
        }
        for name, kind in (
            ("AY001MTP1", "black_box"),
            ("AY001MTC2", "black_box"),
            ("AY001RTA", "white_box"),
        ):
            accounts.create_model(session, name=name, kind=kind)
        emails = {}
        for user, (role, oem) in USERS.items():
            emails[user] = f"{user}@example.com"
            accounts.create_user(
                session,
                None,
                email=emails[user],
                password=PASSWORD,
                role=role,
                oem_id=oem_ids[oem] if oem else None,
            )
    return World(client=client, oem_ids=oem_ids, emails=emails)
