"""Single-use verify tokens; refused calls of a foreign OEM are its record alone

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DSN = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "used_verify_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("dsn", DSN, nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_used_verify_tokens")),
    )
    op.create_index("ix_used_verify_tokens_used_at", "used_verify_tokens", ["used_at"])
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("visible_to_oem_id", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("visible_to_oem_id")
    op.drop_table("used_verify_tokens")
