"""A fresh database with one module maker (OEM, certificate, model, user) and its HTTP calls."""

from __future__ import annotations

import httpx
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Role
from devicefactory.db import make_engine, make_session_factory, session_scope
from devicefactory.keys.crypto import make_self_signed_certificate
from devicefactory.migrate import upgrade_database

MODEL = "BENCH01"
EMAIL = "factory@bench.example"
PASSWORD = "bench-password-2026"
RESERVE_PATH = "/devicefactory/v1/devices/reserve"


def prepare_database(url: str) -> sessionmaker[Session]:
    """Create the schema through the migrations, as every command does."""
    engine = make_engine(url)
    upgrade_database(engine)
    return make_session_factory(engine)


def create_module_maker(factory: sessionmaker[Session], *, model: str = MODEL) -> str:
    """An OEM with a factory certificate, a black-box model and its ModuleManufacturer user.

    Returns the OEM's id.
    """
    certificate, _ = make_self_signed_certificate("bench factory")
    with session_scope(factory) as session:
        oem = accounts.create_oem(
            session, name="Bench Modules", module_manufacturer=True, certificate_pem=certificate.decode()
        )
        accounts.create_model(session, name=model, kind="black_box")
        accounts.create_user(
            session, None, email=EMAIL, password=PASSWORD, role=Role.MODULE_MANUFACTURER, oem_id=oem.oem_id
        )
        return oem.oem_id


def sign_in(client: httpx.Client) -> dict[str, str]:
    """Authorization headers of the module maker's user."""
    response = client.post("/users/sign_in.json", json={"user": {"email": EMAIL, "password": PASSWORD}})
    response.raise_for_status()
    return {"Authorization": f"auth_token {response.json()['access_token']}"}


def reserve(client: httpx.Client, headers: dict[str, str], count: int) -> list[str]:
    """Reserve ``count`` devices and return their DSNs."""
    response = client.post(RESERVE_PATH, json={"model": MODEL, "count": count}, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"reserve({count}) answered {response.status_code}: {response.text[:500]}")
    return [item["device"]["dsn"] for item in response.json()]
