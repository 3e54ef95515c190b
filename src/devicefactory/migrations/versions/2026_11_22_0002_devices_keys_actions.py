"""devices keys actions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:22:48.759439
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("next_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_counters")),
    )
    op.create_table(
        "key_pool",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_pool")),
    )
    with op.batch_alter_table("key_pool", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_key_pool_created_at"), ["created_at"], unique=False)

    op.create_table(
        "factory_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("oem_id", sa.String(length=8), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("upload_type", sa.String(length=16), nullable=True),
        sa.Column("validate_only", sa.Boolean(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=True),
        sa.Column("file_path", sa.String(length=1024), nullable=True),
        sa.Column("file_format", sa.String(length=8), nullable=True),
        sa.Column("file_header", sa.Text(), nullable=True),
        sa.Column("oem_host_version", sa.String(length=255), nullable=True),
        sa.Column("lines_total", sa.Integer(), nullable=False),
        sa.Column("lines_done", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("identical", sa.Integer(), nullable=False),
        sa.Column("conflict", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_factory_actions_created_by_user_id_users")
        ),
        sa.ForeignKeyConstraint(["oem_id"], ["oems.oem_id"], name=op.f("fk_factory_actions_oem_id_oems")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factory_actions")),
    )
    with op.batch_alter_table("factory_actions", schema=None) as batch_op:
        batch_op.create_index("ix_factory_actions_oem_created", ["oem_id", "created_at"], unique=False)
        batch_op.create_index("ix_factory_actions_status", ["status"], unique=False)

    op.create_table(
        "action_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("dsn", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("changes", sa.Text(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"],
            ["factory_actions.id"],
            name=op.f("fk_action_lines_action_id_factory_actions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_lines")),
        sa.UniqueConstraint("action_id", "line_no", name=op.f("uq_action_lines_action_id")),
    )
    with op.batch_alter_table("action_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_action_lines_dsn"), ["dsn"], unique=False)

    op.create_table(
        "devices",
        sa.Column("dsn", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("reserved_by_oem_id", sa.String(length=8), nullable=True),
        sa.Column("owner_oem_id", sa.String(length=8), nullable=True),
        sa.Column("reserve_action_id", sa.Integer(), nullable=True),
        sa.Column("reserved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("manufactured_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provisioned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("mac", sa.String(length=12), nullable=True),
        sa.Column("hwsig", sa.String(length=128), nullable=True),
        sa.Column("dom_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("manuf_model", sa.String(length=255), nullable=True),
        sa.Column("manuf_sn", sa.String(length=255), nullable=True),
        sa.Column("odm", sa.String(length=255), nullable=True),
        sa.Column("module_sw_version", sa.String(length=255), nullable=True),
        sa.Column("oem_host_version", sa.String(length=255), nullable=True),
        sa.Column("wifi_setup_key", sa.String(length=255), nullable=True),
        sa.Column("ads_connect_flag", sa.Boolean(), nullable=True),
        sa.Column("oem_model", sa.String(length=255), nullable=True),
        sa.Column("template_id", sa.String(length=255), nullable=True),
        sa.Column("registered_user", sa.String(length=255), nullable=True),
        sa.Column("datapoint_count", sa.Integer(), nullable=False),
        sa.Column("last_job_failed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model"], ["module_models.name"], name=op.f("fk_devices_model_module_models")
        ),
        sa.ForeignKeyConstraint(["owner_oem_id"], ["oems.oem_id"], name=op.f("fk_devices_owner_oem_id_oems")),
        sa.ForeignKeyConstraint(
            ["reserve_action_id"],
            ["factory_actions.id"],
            name=op.f("fk_devices_reserve_action_id_factory_actions"),
        ),
        sa.ForeignKeyConstraint(
            ["reserved_by_oem_id"], ["oems.oem_id"], name=op.f("fk_devices_reserved_by_oem_id_oems")
        ),
        sa.PrimaryKeyConstraint("dsn", name=op.f("pk_devices")),
        sa.UniqueConstraint("hwsig", name=op.f("uq_devices_hwsig")),
        sa.UniqueConstraint("mac", name=op.f("uq_devices_mac")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_manufactured_at"), ["manufactured_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_model"), ["model"], unique=False)
        batch_op.create_index("ix_devices_owner_dsn", ["owner_oem_id", "dsn"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_provisioned_at"), ["provisioned_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_reserve_action_id"), ["reserve_action_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_reserved_at"), ["reserved_at"], unique=False)
        batch_op.create_index("ix_devices_reserved_by_dsn", ["reserved_by_oem_id", "dsn"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_status"), ["status"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dsn", sa.String(length=32), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["action_id"], ["factory_actions.id"], name=op.f("fk_jobs_action_id_factory_actions")
        ),
        sa.ForeignKeyConstraint(
            ["dsn"], ["devices.dsn"], name=op.f("fk_jobs_dsn_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_action_id"), ["action_id"], unique=False)
        batch_op.create_index("ix_jobs_dsn_id", ["dsn", "id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_dsn_id")
        batch_op.drop_index(batch_op.f("ix_jobs_action_id"))

    op.drop_table("jobs")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_status"))
        batch_op.drop_index("ix_devices_reserved_by_dsn")
        batch_op.drop_index(batch_op.f("ix_devices_reserved_at"))
        batch_op.drop_index(batch_op.f("ix_devices_reserve_action_id"))
        batch_op.drop_index(batch_op.f("ix_devices_provisioned_at"))
        batch_op.drop_index("ix_devices_owner_dsn")
        batch_op.drop_index(batch_op.f("ix_devices_model"))
        batch_op.drop_index(batch_op.f("ix_devices_manufactured_at"))

    op.drop_table("devices")
    with op.batch_alter_table("action_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_action_lines_dsn"))

    op.drop_table("action_lines")
    with op.batch_alter_table("factory_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_factory_actions_status")
        batch_op.drop_index("ix_factory_actions_oem_created")

    op.drop_table("factory_actions")
    with op.batch_alter_table("key_pool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_key_pool_created_at"))

    op.drop_table("key_pool")
    op.drop_table("counters")
