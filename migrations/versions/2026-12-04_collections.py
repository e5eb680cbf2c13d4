"""Collections: team knowledge bases with members and roles (issue 16).

Nothing that exists moves: every document, vector and lexical row gets `collection_id` NULL,
which keeps its meaning (private to its owner, or shared), and every API key stays
unrestricted. Vectors kept in Pinecone need no change: without `collection_id` metadata they
match the private and shared clauses exactly as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENTS_FK = "fk_documents_collection_id_collections"
PRIVATE_BEFORE = "NOT shared"
PRIVATE_NOW = "NOT shared AND collection_id IS NULL"


def _private_index(where: str) -> None:
    op.create_index(
        "uq_documents_private_content",
        "documents",
        ["owner_id", "content_hash"],
        unique=True,
        sqlite_where=sa.text(where),
        postgresql_where=sa.text(where),
    )


def _shared_index() -> None:
    op.create_index(
        "uq_documents_shared_content",
        "documents",
        ["content_hash"],
        unique=True,
        sqlite_where=sa.text("shared"),
        postgresql_where=sa.text("shared"),
    )


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("deleting", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "collection_members",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_members_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_collection_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "user_id", name=op.f("pk_collection_members")),
    )
    op.create_index(
        op.f("ix_collection_members_user_id"), "collection_members", ["user_id"]
    )
    op.create_table(
        "api_key_collections",
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_collections_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_api_key_collections_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "api_key_id", "collection_id", name=op.f("pk_api_key_collections")
        ),
    )
    op.create_index(
        op.f("ix_api_key_collections_collection_id"), "api_key_collections", ["collection_id"]
    )

    # The partial indexes go first and come back after: SQLite's table rebuild (batch mode)
    # would not keep their WHERE.
    op.drop_index("uq_documents_private_content", table_name="documents")
    op.drop_index("uq_documents_shared_content", table_name="documents")
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "documents", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.add_column(sa.Column("collection_id", sa.Integer(), nullable=True))
            batch.create_foreign_key(
                DOCUMENTS_FK, "collections", ["collection_id"], ["id"], ondelete="CASCADE"
            )
    else:
        op.add_column("documents", sa.Column("collection_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            DOCUMENTS_FK, "documents", "collections", ["collection_id"], ["id"], ondelete="CASCADE"
        )
    op.create_index(op.f("ix_documents_collection_id"), "documents", ["collection_id"])
    # A collection's content is unique within it; private uniqueness leaves collections out.
    _private_index(PRIVATE_NOW)
    _shared_index()
    op.create_index(
        "uq_documents_collection_content",
        "documents",
        ["collection_id", "content_hash"],
        unique=True,
        sqlite_where=sa.text("collection_id IS NOT NULL"),
        postgresql_where=sa.text("collection_id IS NOT NULL"),
    )
    op.add_column("vector_entries", sa.Column("collection_id", sa.Integer(), nullable=True))
    op.add_column("lexical_chunks", sa.Column("collection_id", sa.Integer(), nullable=True))
    op.add_column(
        "api_keys",
        sa.Column(
            "collection_scoped", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Collection documents have no place without collections: they go (their vectors too).
    op.execute(
        "DELETE FROM vector_entries WHERE document_id IN "
        "(SELECT id FROM documents WHERE collection_id IS NOT NULL)"
    )
    op.execute(
        "DELETE FROM lexical_chunks WHERE document_id IN "
        "(SELECT id FROM documents WHERE collection_id IS NOT NULL)"
    )
    op.execute("DELETE FROM documents WHERE collection_id IS NOT NULL")
    op.drop_column("api_keys", "collection_scoped")
    op.drop_column("lexical_chunks", "collection_id")
    op.drop_column("vector_entries", "collection_id")
    op.drop_index("uq_documents_collection_content", table_name="documents")
    op.drop_index("uq_documents_private_content", table_name="documents")
    op.drop_index(op.f("ix_documents_collection_id"), table_name="documents")
    op.drop_index("uq_documents_shared_content", table_name="documents")
    if sqlite:
        with op.batch_alter_table(
            "documents", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.drop_column("collection_id")
    else:
        op.drop_constraint(DOCUMENTS_FK, "documents", type_="foreignkey")
        op.drop_column("documents", "collection_id")
    _private_index(PRIVATE_BEFORE)
    _shared_index()
    op.drop_index(op.f("ix_api_key_collections_collection_id"), table_name="api_key_collections")
    op.drop_table("api_key_collections")
    op.drop_index(op.f("ix_collection_members_user_id"), table_name="collection_members")
    op.drop_table("collection_members")
    op.drop_table("collections")
