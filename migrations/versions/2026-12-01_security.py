"""Security: ids never reused, vectors belong to their document, one document per content,
refresh-token families.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite reuses the highest INTEGER PRIMARY KEY after a delete unless the table says
# AUTOINCREMENT, which needs the table recreated.
AUTOINCREMENT_TABLES = ("users", "documents", "chat_messages", "vector_entries")


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"

    # Duplicates that concurrent uploads created: keep the oldest of each.
    op.execute(
        "DELETE FROM documents WHERE NOT shared AND id NOT IN "
        "(SELECT MIN(id) FROM documents WHERE NOT shared GROUP BY owner_id, content_hash)"
    )
    op.execute(
        "DELETE FROM documents WHERE shared AND id NOT IN "
        "(SELECT MIN(id) FROM documents WHERE shared GROUP BY content_hash)"
    )
    # Vectors whose document is gone (deleted users, deleted duplicates, crashes).
    op.execute("DELETE FROM vector_entries WHERE document_id NOT IN (SELECT id FROM documents)")

    op.drop_index("ix_documents_owner_id_content_hash", table_name="documents")
    # Ingestion claims and progress (a worker resumes a document from its last batch).
    with op.batch_alter_table("documents") as batch:
        batch.add_column(
            sa.Column("indexed_chunks", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("claimed_until", UTCDateTime(), nullable=True))
    with op.batch_alter_table("documents") as batch:
        batch.alter_column("indexed_chunks", server_default=None)
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("family_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))
    op.execute("UPDATE refresh_tokens SET family_id = jti")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column("family_id", existing_type=sa.String(length=64), nullable=False)
        batch.create_index(batch.f("ix_refresh_tokens_family_id"), ["family_id"])

    fk = ("fk_vector_entries_document_id_documents", "documents", ["document_id"], ["id"])
    if sqlite:
        # One recreation per table: a later batch on the same table would reflect it and lose
        # AUTOINCREMENT again (later migrations must pass the same table_kwargs).
        for table in AUTOINCREMENT_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ) as batch:
                if table == "vector_entries":
                    batch.create_foreign_key(*fk, ondelete="CASCADE")
    else:
        op.create_foreign_key(fk[0], "vector_entries", *fk[1:], ondelete="CASCADE")
    op.create_index(
        "uq_documents_private_content",
        "documents",
        ["owner_id", "content_hash"],
        unique=True,
        sqlite_where=sa.text("NOT shared"),
        postgresql_where=sa.text("NOT shared"),
    )
    op.create_index(
        "uq_documents_shared_content",
        "documents",
        ["content_hash"],
        unique=True,
        sqlite_where=sa.text("shared"),
        postgresql_where=sa.text("shared"),
    )


def downgrade() -> None:
    op.drop_index("uq_documents_shared_content", table_name="documents")
    op.drop_index("uq_documents_private_content", table_name="documents")
    with op.batch_alter_table("vector_entries") as batch:
        batch.drop_constraint("fk_vector_entries_document_id_documents", type_="foreignkey")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_index("ix_refresh_tokens_family_id")
        batch.drop_column("revoked_at")
        batch.drop_column("family_id")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
        batch.drop_column("indexed_chunks")
    op.create_index(
        "ix_documents_owner_id_content_hash", "documents", ["owner_id", "content_hash"]
    )
