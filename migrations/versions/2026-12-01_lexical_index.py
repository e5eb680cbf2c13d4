# ruff: noqa: S608 - SQL built from the lexical module's constants
"""Lexical index beside the vectors: SQLite FTS5 / PostgreSQL tsvector + GIN, filled from the
chunks already stored.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.rag.lexical import INDEX_DDL, TABLE

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.String(length=128), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("heading", sa.String(length=500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_lexical_chunks_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lexical_chunks")),
        sa.UniqueConstraint("chunk_id", name=op.f("uq_lexical_chunks_chunk_id")),
    )
    op.create_index(op.f("ix_lexical_chunks_document_id"), TABLE, ["document_id"])
    create, _ = INDEX_DDL[op.get_bind().dialect.name]
    for statement in create:
        op.execute(statement)
    # Index what the local store already holds (the triggers or the generated column do it).
    # Chunks kept in Pinecone have no copy here: re-ingest those documents (README).
    op.execute(
        f"INSERT INTO {TABLE} (chunk_id, document_id, owner_id, title, heading, text) "
        "SELECT chunk_id, document_id, owner_id, title, '', text FROM vector_entries "
        "WHERE document_id IN (SELECT id FROM documents)"
    )


def downgrade() -> None:
    _, drop = INDEX_DDL[op.get_bind().dialect.name]
    for statement in drop:
        op.execute(statement)
    op.drop_index(op.f("ix_lexical_chunks_document_id"), table_name=TABLE)
    op.drop_table(TABLE)
