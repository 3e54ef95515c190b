"""A retired device keeps no private key: devices.sealed_private_key may be NULL

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _set_nullable(True)


def downgrade() -> None:
    # A retired device has no key to put back: it cannot live under NOT NULL again.
    op.execute("DELETE FROM devices WHERE sealed_private_key IS NULL")
    _set_nullable(False)


def _set_nullable(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite changes a column by copying the table and dropping the old one; with
        # foreign keys on, that drop deletes every job (ON DELETE CASCADE), and the pragma
        # cannot be turned off inside the migration's transaction. Keep the jobs aside.
        op.execute("CREATE TEMP TABLE _jobs_kept AS SELECT * FROM jobs")
    with op.batch_alter_table("devices") as batch_op:
        batch_op.alter_column("sealed_private_key", existing_type=sa.LargeBinary(), nullable=nullable)
    if sqlite:
        op.execute("DELETE FROM jobs")
        op.execute("INSERT INTO jobs SELECT * FROM _jobs_kept")
        op.execute("DROP TABLE _jobs_kept")
