"""DSNs in the "C" collation on PostgreSQL; action lines indexed by (action, dsn)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 01:35:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # With byte-order DSNs the primary key serves prefix searches and DSN order at
        # once; the text_pattern_ops index of 0003 is then redundant.
        op.drop_index("ix_devices_dsn_pattern", table_name="devices")
        op.drop_constraint("fk_jobs_dsn_devices", "jobs", type_="foreignkey")
        op.execute('ALTER TABLE devices ALTER COLUMN dsn TYPE VARCHAR(32) COLLATE "C"')
        op.execute('ALTER TABLE jobs ALTER COLUMN dsn TYPE VARCHAR(32) COLLATE "C"')
        op.execute('ALTER TABLE action_lines ALTER COLUMN dsn TYPE VARCHAR(64) COLLATE "C"')
        op.create_foreign_key("fk_jobs_dsn_devices", "jobs", "devices", ["dsn"], ["dsn"], ondelete="CASCADE")
    with op.batch_alter_table("action_lines") as batch_op:
        batch_op.create_index("ix_action_lines_action_dsn", ["action_id", "dsn"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("action_lines") as batch_op:
        batch_op.drop_index("ix_action_lines_action_dsn")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_jobs_dsn_devices", "jobs", type_="foreignkey")
        op.execute('ALTER TABLE action_lines ALTER COLUMN dsn TYPE VARCHAR(64) COLLATE "default"')
        op.execute('ALTER TABLE jobs ALTER COLUMN dsn TYPE VARCHAR(32) COLLATE "default"')
        op.execute('ALTER TABLE devices ALTER COLUMN dsn TYPE VARCHAR(32) COLLATE "default"')
        op.create_foreign_key("fk_jobs_dsn_devices", "jobs", "devices", ["dsn"], ["dsn"], ondelete="CASCADE")
        op.create_index(
            "ix_devices_dsn_pattern",
            "devices",
            ["dsn"],
            unique=False,
            postgresql_ops={"dsn": "text_pattern_ops"},
        )
