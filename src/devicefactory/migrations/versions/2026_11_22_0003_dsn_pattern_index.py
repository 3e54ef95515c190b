"""dsn pattern index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:30:04.620991
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Only PostgreSQL needs it: SQLite serves DSN prefixes with a range on the primary key.
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_devices_dsn_pattern",
            "devices",
            ["dsn"],
            unique=False,
            postgresql_ops={"dsn": "text_pattern_ops"},
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_devices_dsn_pattern", table_name="devices")
