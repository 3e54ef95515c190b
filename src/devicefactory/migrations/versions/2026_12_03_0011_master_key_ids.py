"""Each sealed private key records the master key that sealed it; master key rotations

Rows sealed before keep no id (NULL): any loaded key that opens them is the one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("key_pool", "devices"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("master_key_id", sa.String(16), nullable=True))
    op.create_table(
        "master_key_rotations",
        sa.Column("new_key_id", sa.String(16), nullable=False),
        sa.Column("old_key_id", sa.String(16), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("new_key_id", name=op.f("pk_master_key_rotations")),
    )


def downgrade() -> None:
    op.drop_table("master_key_rotations")
    for table in ("devices", "key_pool"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("master_key_id")
