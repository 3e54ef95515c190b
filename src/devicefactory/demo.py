"""Demo data for a first look: OEMs of each kind, a user per role, models, certificates."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from devicefactory.accounts import service as accounts
from devicefactory.accounts.policy import Role
from devicefactory.keys.crypto import make_self_signed_certificate
from devicefactory.tables.accounts import User

DEMO_PASSWORD = "factory-demo-2026"
PLATFORM_ADMIN = "admin@devicefactory.example"


@dataclass(frozen=True)
class DemoOem:
    slug: str
    name: str
    module_manufacturer: bool
    roles: tuple[Role, ...]


DEMO_OEMS = (
    DemoOem("modules", "Acme Modules", True, (Role.MODULE_MANUFACTURER, Role.OEM_ADMIN)),
    DemoOem("products", "Sprockley Products", False, (Role.MODULE_OEM_MANUFACTURER, Role.OEM_ADMIN)),
    DemoOem("gateways", "Zbgw Gateways", False, (Role.SOFTWARE_OEM_MANUFACTURER, Role.OEM_ADMIN)),
)
DEMO_MODELS = (
    ("AY001MTP1", "black_box", "Wi-Fi production module"),
    ("AY001MTC2", "black_box", "Wi-Fi production module"),
    ("AY001RTA", "white_box", "Linux gateway agent"),
)
_ROLE_LOCAL_PART = {
    Role.MODULE_MANUFACTURER: "factory",
    Role.MODULE_OEM_MANUFACTURER: "factory",
    Role.SOFTWARE_OEM_MANUFACTURER: "factory",
    Role.OEM_ADMIN: "admin",
}


def demo_email(oem: DemoOem, role: Role) -> str:
    return f"{_ROLE_LOCAL_PART[role]}@{oem.slug}.example"


def load_demo_data(session: Session, demo_dir: Path) -> bool:
    """Fill an empty database; a database that has users is left alone."""
    if session.scalar(select(func.count()).select_from(User)):
        return False
    demo_dir.mkdir(parents=True, exist_ok=True)
    accounts.create_user(
        session,
        None,
        email=PLATFORM_ADMIN,
        password=DEMO_PASSWORD,
        role=Role.AYLA_ADMIN,
        oem_id=None,
    )
    for name, kind, description in DEMO_MODELS:
        accounts.create_model(session, name=name, kind=kind, description=description)
    for demo_oem in DEMO_OEMS:
        certificate = _write_certificate(demo_dir, demo_oem)
        oem = accounts.create_oem(
            session,
            name=demo_oem.name,
            module_manufacturer=demo_oem.module_manufacturer,
            certificate_pem=certificate,
        )
        (demo_dir / f"{demo_oem.slug}.oem_id").write_text(oem.oem_id + "\n")
        for role in demo_oem.roles:
            accounts.create_user(
                session,
                None,
                email=demo_email(demo_oem, role),
                password=DEMO_PASSWORD,
                role=role,
                oem_id=oem.oem_id,
            )
    return True


def _write_certificate(demo_dir: Path, demo_oem: DemoOem) -> str:
    certificate, private_key = make_self_signed_certificate(f"{demo_oem.name} factory")
    key_path = demo_dir / f"{demo_oem.slug}-factory.key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as key_file:
        key_file.write(private_key)
    (demo_dir / f"{demo_oem.slug}-factory.cert.pem").write_bytes(certificate)
    return certificate.decode()


def print_demo_guide(demo_dir: Path, base_url: str, *, fresh: bool) -> None:
    state = "loaded demo data" if fresh else "the database already has data; demo users (if kept)"
    click.echo(f"\n== Device Factory Service: {state}")
    click.echo(f"   password for every demo user: {DEMO_PASSWORD}")
    click.echo(f"   {PLATFORM_ADMIN:<32} {Role.AYLA_ADMIN}")
    for demo_oem in DEMO_OEMS:
        for role in demo_oem.roles:
            click.echo(f"   {demo_email(demo_oem, role):<32} {role} ({demo_oem.name})")
    click.echo(f"   factory certificates and their private keys: {demo_dir}/")
    click.echo(f"   dashboard: {base_url}/dashboard   API docs: {base_url}/docs")
    email = demo_email(DEMO_OEMS[0], Role.MODULE_MANUFACTURER)
    body = json.dumps({"user": {"email": email, "password": DEMO_PASSWORD}})
    click.echo("\n   Sign in from a shell:")
    click.echo(f"   curl -s -X POST {base_url}/users/sign_in.json \\")
    click.echo(f"     -H 'Content-Type: application/json' -d '{body}'\n")
