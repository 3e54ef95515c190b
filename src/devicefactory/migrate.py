"""Create or upgrade the database schema with Alembic (never ``create_all``)."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from devicefactory.db import make_engine, normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade_database(url_or_engine: str | Engine) -> None:
    """Bring the schema to head; safe to call from several processes at once."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    _ensure_sqlite_directory(str(engine.url))
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Serialise concurrent upgrades (several web and worker processes starting).
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7410451)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _ensure_sqlite_directory(url: str) -> None:
    """The database's directory exists, and the database's files are the service's alone
    (0700, 0600), also when an older version made them readable by others."""
    url = normalize_url(url)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        database = Path(url[len("sqlite:///") :])
        database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for path in database.parent.glob(database.name + "*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mode & 0o077:
                    path.chmod(0o600)


@functools.cache
def head_revision() -> str | None:
    """The revision the code's migrations lead to."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database's schema is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()
