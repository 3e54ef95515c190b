"""The schema comes only from migrations, and they match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from devicefactory.migrate import upgrade_database
from devicefactory.tables import Base
from tests.conftest import reset_schema


def test_upgrade_from_empty_to_head_matches_the_models(engine: Engine) -> None:
    reset_schema(engine)
    assert not [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    upgrade_database(engine)
    upgrade_database(engine)  # a second run is a no-op
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
