"""Key pool fillers report their rate (AFS-605 Retry-After)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_pool_fillers",
        sa.Column("worker_id", sa.String(64), nullable=False),
        sa.Column("keys_per_second", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name=op.f("pk_key_pool_fillers")),
    )


def downgrade() -> None:
    op.drop_table("key_pool_fillers")
