"""The ``devicefactory`` command: serve, worker, admin, demo, db."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session, sessionmaker

from devicefactory.accounts import service as accounts
from devicefactory.audit_chain import verify_database
from devicefactory.config import Settings
from devicefactory.db import make_engine, make_session_factory, session_scope
from devicefactory.errors import ServiceError
from devicefactory.keys.master import SETTLE_SECONDS, load_master_key, rotate
from devicefactory.logs import configure_logging
from devicefactory.migrate import upgrade_database
from devicefactory.processes import SERVE_PID_VARIABLE, end_with_serve

T = TypeVar("T")
# In-flight requests get this long to finish when serve is asked to stop (SIGTERM/SIGINT).
SHUTDOWN_GRACE_SECONDS = 5


def prepared_database(settings: Settings) -> sessionmaker[Session]:
    """Every command first brings the schema up to date."""
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    return make_session_factory(engine)


def run_service(settings: Settings, work: Callable[[Session], T]) -> T:
    """Run one service call in a transaction; a ServiceError exits 1 with its message."""
    factory = prepared_database(settings)
    try:
        with session_scope(factory) as session:
            return work(session)
    except ServiceError as error:
        click.echo(f"error: {error.code}: {error.message}", err=True)
        sys.exit(1)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """Device Factory Service."""
    # Every file the service makes (database, master key, uploads) is its own alone.
    os.umask(0o077)
    ctx.obj = Settings()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--web-workers", default=1, show_default=True, type=int, help="Web processes.")
@click.option("--no-workers", is_flag=True, help="Do not run the background workers here.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Require client certificates.",
)
@click.pass_obj
def serve(
    settings: Settings, /, host: str, port: int, web_workers: int, no_workers: bool, **tls: Any
) -> None:
    """Run the API, the dashboard and the background workers."""
    import uvicorn

    from devicefactory.workers import start_worker_process

    configure_logging(settings.log_format)
    prepared_database(settings)
    # Web worker processes and the background worker end with this process (processes.py).
    os.environ[SERVE_PID_VARIABLE] = str(os.getpid())
    worker = None if no_workers or not settings.run_workers else start_worker_process()
    try:
        uvicorn.run(
            "devicefactory.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=web_workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
            **_tls_options(**tls),
        )
    finally:
        # Reached on a normal return; after a re-raised signal the worker ends on its own.
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()


def _tls_options(tls_cert: str | None, tls_key: str | None, tls_client_ca: str | None) -> dict[str, Any]:
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if tls_client_ca and not tls_cert:
        raise click.UsageError("--tls-client-ca needs --tls-cert and --tls-key")
    options: dict[str, Any] = {}
    if tls_cert:
        options.update(ssl_certfile=tls_cert, ssl_keyfile=tls_key)
    if tls_client_ca:
        options.update(ssl_ca_certs=tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


@main.command()
@click.pass_obj
def worker(settings: Settings) -> None:
    """Run only the background workers (key pool filler, factory-action runner)."""
    from devicefactory.workers import run_workers

    end_with_serve()
    configure_logging(settings.log_format)
    prepared_database(settings)
    run_workers(settings)


@main.group("master-key")
def master_key() -> None:
    """The master key that seals every private key: its id, its rotation."""


@master_key.command("id")
@click.pass_obj
def master_key_id(settings: Settings) -> None:
    """Print the id of the configured master key (what each sealed key records)."""
    click.echo(load_master_key(settings).key_id)


@master_key.command("rotate")
@click.option(
    "--new-key-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The new key (made, mode 0600, when it does not exist; wrapped by the HSM when one is set).",
)
@click.pass_obj
def master_key_rotate(settings: Settings, new_key_file: Path) -> None:
    """Re-seal every private key under a new master key, while the service runs.

    Resumable: run it again after a crash. When it is done, restart every process with
    DEVICEFACTORY_MASTER_KEY_FILE set to the new file (docs/deployment.md).
    """
    configure_logging(settings.log_format)
    factory = prepared_database(settings)
    current = load_master_key(settings)
    new = load_master_key(settings, new_key_file)
    click.echo(f"rotating from master key {current.key_id} to {new.key_id} ({new_key_file})")
    click.echo(f"  running processes learn the new key first: re-sealing starts in {SETTLE_SECONDS:.0f} s")

    def progress(what: str, done: int, left: int) -> None:
        click.echo(f"  {what}: {done} re-sealed, {left} left")

    try:
        total = rotate(factory, current, new, progress, batch=settings.rotation_batch)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"done: {total} private keys re-sealed; only {new_key_file} opens them now.\n"
        f"Restart every process with DEVICEFACTORY_MASTER_KEY_FILE={new_key_file}"
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Create or upgrade the schema to the latest version."""
    prepared_database(settings)
    click.echo("database is up to date")


@main.group()
def audit() -> None:
    """The audit log's hash chain."""


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Walk the chain: exit 0 when intact, 1 naming the first entry changed, removed or inserted."""
    prepared_database(settings)
    verdict = verify_database(settings.database_url)
    if not verdict.intact:
        click.echo(f"audit chain broken: {verdict.problem}", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {verdict.entries} entries, last hash {verdict.last_hash}")


@main.group()
def admin() -> None:
    """Create OEMs, users and models (for the first admin and for scripts)."""


@admin.command("create-oem")
@click.option("--name", required=True)
@click.option("--module-manufacturer", is_flag=True)
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Factory certificate (PEM).",
)
@click.option("--reservation-limit", type=int, default=100_000, show_default=True)
@click.pass_obj
def create_oem(
    settings: Settings,
    name: str,
    module_manufacturer: bool,
    cert_file: str | None,
    reservation_limit: int,
) -> None:
    """Create an OEM and print its oem_id alone on its line."""
    pem = Path(cert_file).read_text() if cert_file else None
    oem_id = run_service(
        settings,
        lambda session: (
            accounts.create_oem(
                session,
                name=name,
                module_manufacturer=module_manufacturer,
                certificate_pem=pem,
                reservation_limit=reservation_limit,
            ).oem_id
        ),
    )
    click.echo(oem_id)


@admin.command("create-user")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option("--role", required=True)
@click.option("--oem", "oem_id", default=None, help="oem_id (none for Ayla::Admin).")
@click.pass_obj
def create_user(settings: Settings, email: str, password: str, role: str, oem_id: str | None) -> None:
    """Create a user."""
    user_id = run_service(
        settings,
        lambda session: (
            accounts.create_user(session, None, email=email, password=password, role=role, oem_id=oem_id).id
        ),
    )
    click.echo(f"created user {user_id} {email.strip().lower()} ({role})")


@admin.command("create-model")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(["black_box", "white_box"]))
@click.option("--description", default="")
@click.pass_obj
def create_model(settings: Settings, name: str, kind: str, description: str) -> None:
    """Create a module model."""
    run_service(
        settings,
        lambda session: accounts.create_model(session, name=name, kind=kind, description=description),
    )
    click.echo(f"created model {name} ({kind})")


def _on_user(settings: Settings, email: str, operation: Callable[..., object], **fields: Any) -> None:
    """Run an account-recovery service on the user with this email, as the operator."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    run_service(
        settings,
        lambda session: operation(
            session, None, user_id=accounts.user_id_for_email(session, email), now=now, **fields
        ),
    )


@admin.command("unlock-user")
@click.option("--email", required=True)
@click.pass_obj
def unlock_user(settings: Settings, email: str) -> None:
    """Lift a user's sign-in lockout at once."""
    _on_user(settings, email, accounts.unlock_user)
    click.echo(f"unlocked {email.strip().lower()}")


@admin.command("set-password")
@click.option("--email", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_obj
def set_password(settings: Settings, email: str, password_stdin: bool) -> None:
    """Set a user's password (prompted for); every token of the user stops working."""
    if password_stdin:
        text = sys.stdin.read()
        password = text.removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    _on_user(settings, email, accounts.set_password, password=password)
    click.echo(f"password set for {email.strip().lower()}; its tokens were revoked")


@admin.command("deactivate-user")
@click.option("--email", required=True)
@click.pass_obj
def deactivate_user(settings: Settings, email: str) -> None:
    """Deactivate a user: it cannot sign in and its tokens stop working."""
    _on_user(settings, email, accounts.deactivate_user)
    click.echo(f"deactivated {email.strip().lower()}")


@admin.command("reactivate-user")
@click.option("--email", required=True)
@click.pass_obj
def reactivate_user(settings: Settings, email: str) -> None:
    """Let a deactivated user sign in again."""
    _on_user(settings, email, accounts.reactivate_user)
    click.echo(f"reactivated {email.strip().lower()}")


@main.command()
@click.option("--dir", "demo_dir", default="var/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@click.pass_obj
def demo(settings: Settings, demo_dir: str, base_url: str) -> None:
    """Load demo data into an empty database and print how to sign in."""
    from devicefactory.demo import load_demo_data, print_demo_guide

    factory = prepared_database(settings)
    with session_scope(factory) as session:
        loaded = load_demo_data(session, Path(demo_dir))
    print_demo_guide(Path(demo_dir), base_url, fresh=loaded)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
