"""Validate sees what its earlier batches would have changed; line outcomes carry model and status

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DSN = sa.String(32).with_variant(sa.String(32, collation="C"), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("action_lines") as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("device_status", sa.String(16), nullable=True))
    op.create_table(
        "validate_overlay",
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("dsn", DSN, nullable=False),
        sa.Column("mac", sa.String(12), nullable=True),
        sa.Column("hwsig", sa.String(128), nullable=True),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["factory_actions.id"],
            name=op.f("fk_validate_overlay_action_id_factory_actions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("action_id", "dsn", name=op.f("pk_validate_overlay")),
    )
    op.create_index("ix_validate_overlay_action_mac", "validate_overlay", ["action_id", "mac"])
    op.create_index("ix_validate_overlay_action_hwsig", "validate_overlay", ["action_id", "hwsig"])


def downgrade() -> None:
    op.drop_table("validate_overlay")
    with op.batch_alter_table("action_lines") as batch_op:
        batch_op.drop_column("device_status")
        batch_op.drop_column("model")
