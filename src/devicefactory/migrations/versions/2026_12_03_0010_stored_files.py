"""Uploads stored in the database, in chunks (any worker on any host can read them)

Pending and running uploads whose file is on this host are copied in; one whose file is
not here fails with a message saying to upload it again. Finished actions keep their
outcomes and files (CSV, LOG, failed lines), which never read the upload.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 14:00:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 1024 * 1024


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_files")),
    )
    op.create_index("ix_stored_files_created_at", "stored_files", ["created_at"])
    op.create_table(
        "stored_file_chunks",
        sa.Column("file_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["stored_files.id"],
            name=op.f("fk_stored_file_chunks_file_id_stored_files"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_stored_file_chunks")),
    )
    with op.batch_alter_table("factory_actions") as batch_op:
        batch_op.add_column(sa.Column("file_id", sa.String(32), nullable=True))
        batch_op.create_index("ix_factory_actions_file_id", ["file_id"])
        batch_op.create_foreign_key(
            "fk_factory_actions_file_id_stored_files",
            "stored_files",
            ["file_id"],
            ["id"],
            ondelete="SET NULL",
        )
    _carry_pending_uploads()
    with op.batch_alter_table("factory_actions") as batch_op:
        batch_op.drop_column("file_path")


def _carry_pending_uploads() -> None:
    connection = op.get_bind()
    pending = connection.execute(
        sa.text(
            "SELECT id, file_path FROM factory_actions "
            "WHERE file_path IS NOT NULL AND status IN ('pending', 'running')"
        )
    ).all()
    now = datetime.now(UTC)
    for action_id, file_path in pending:
        path = Path(file_path)
        if not path.is_file():
            connection.execute(
                sa.text(
                    "UPDATE factory_actions SET status = 'failure', finished_at = :now, message = :message "
                    "WHERE id = :id"
                ),
                {
                    "now": now,
                    "id": action_id,
                    "message": "the uploaded file was not on this host when uploads moved into the "
                    "database; upload it again",
                },
            )
            continue
        file_id = uuid.uuid4().hex
        connection.execute(
            sa.text(
                "INSERT INTO stored_files (id, size, complete, created_at) VALUES (:id, :size, :c, :now)"
            ),
            {"id": file_id, "size": path.stat().st_size, "c": True, "now": now},
        )
        with path.open("rb") as stream:
            for seq, chunk in enumerate(iter(lambda: stream.read(CHUNK), b"")):
                connection.execute(
                    sa.text("INSERT INTO stored_file_chunks (file_id, seq, data) VALUES (:f, :s, :d)"),
                    {"f": file_id, "s": seq, "d": chunk},
                )
        connection.execute(
            sa.text("UPDATE factory_actions SET file_id = :f WHERE id = :id"), {"f": file_id, "id": action_id}
        )


def downgrade() -> None:
    with op.batch_alter_table("factory_actions") as batch_op:
        batch_op.add_column(sa.Column("file_path", sa.String(1024), nullable=True))
        batch_op.drop_constraint("fk_factory_actions_file_id_stored_files", type_="foreignkey")
        batch_op.drop_index("ix_factory_actions_file_id")
        batch_op.drop_column("file_id")
    op.drop_table("stored_file_chunks")
    op.drop_table("stored_files")
