"""(date, dsn, tenant) indexes for date-range searches, replacing the single-column date indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 01:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("reserved_at", "manufactured_at", "provisioned_at")


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        for column in EVENTS:
            batch_op.drop_index(f"ix_devices_{column}")
            batch_op.create_index(
                f"ix_devices_{column}_dsn",
                [column, "dsn", "reserved_by_oem_id", "owner_oem_id"],
                unique=False,
            )


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch_op:
        for column in EVENTS:
            batch_op.drop_index(f"ix_devices_{column}_dsn")
            batch_op.create_index(f"ix_devices_{column}", [column], unique=False)
