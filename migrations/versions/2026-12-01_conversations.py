"""Conversations: every chat message belongs to one; existing messages get one per user.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from app.core.db import UTCDateTime, utcnow

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The title of a migrated history: its first question, shortened like new conversations'.
TITLE_CHARS = 60
FALLBACK_TITLE = "Chat history"


def _title(question: str | None) -> str:
    text = " ".join((question or "").split())
    if not text:
        return FALLBACK_TITLE
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[: TITLE_CHARS - 1]
    if " " in cut[TITLE_CHARS // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def _sqlite_autoincrement(table: str) -> dict[str, Any]:
    """Keeps AUTOINCREMENT on a SQLite table that batch mode recreates (reflection loses it)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return {}
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table},
    ).scalar()
    return {"sqlite_autoincrement": True} if sql and "AUTOINCREMENT" in sql.upper() else {}


def _assign_existing_messages() -> None:
    bind = op.get_bind()
    conversations = sa.table(
        "conversations",
        sa.column("id", sa.Integer),
        sa.column("owner_id", sa.Integer),
        sa.column("title", sa.String),
        sa.column("created_at", UTCDateTime),
        sa.column("updated_at", UTCDateTime),
    )
    messages = sa.table(
        "chat_messages",
        sa.column("id", sa.Integer),
        sa.column("user_id", sa.Integer),
        sa.column("role", sa.String),
        sa.column("content", sa.Text),
        sa.column("timestamp", UTCDateTime),
        sa.column("conversation_id", sa.Integer),
    )
    spans = bind.execute(
        sa.select(
            messages.c.user_id,
            sa.func.min(messages.c.timestamp),
            sa.func.max(messages.c.timestamp),
        )
        .group_by(messages.c.user_id)
        .order_by(messages.c.user_id)
    ).all()
    for user_id, first_at, last_at in spans:
        question = bind.execute(
            sa.select(messages.c.content)
            .where(messages.c.user_id == user_id, messages.c.role == "user")
            .order_by(messages.c.timestamp, messages.c.id)
            .limit(1)
        ).scalar()
        conversation_id = bind.execute(
            sa.insert(conversations)
            .values(
                owner_id=user_id,
                title=_title(question),
                created_at=first_at or utcnow(),
                updated_at=last_at or utcnow(),
            )
            .returning(conversations.c.id)
        ).scalar_one()
        bind.execute(
            sa.update(messages)
            .where(messages.c.user_id == user_id)
            .values(conversation_id=conversation_id)
        )


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("client_ref", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_conversations_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_conversations_owner_id_updated_at", "conversations", ["owner_id", "updated_at"]
    )
    op.create_index(
        "uq_conversations_owner_id_client_ref",
        "conversations",
        ["owner_id", "client_ref"],
        unique=True,
    )
    keep = _sqlite_autoincrement("chat_messages")
    with op.batch_alter_table("chat_messages", table_kwargs=keep) as batch:
        batch.add_column(sa.Column("conversation_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("interrupted", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _assign_existing_messages()
    with op.batch_alter_table("chat_messages", table_kwargs=keep) as batch:
        batch.alter_column("conversation_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_chat_messages_conversation_id_conversations"),
            "conversations",
            ["conversation_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(
            "ix_chat_messages_conversation_id_id", ["conversation_id", "id"]
        )


def downgrade() -> None:
    keep = _sqlite_autoincrement("chat_messages")
    with op.batch_alter_table("chat_messages", table_kwargs=keep) as batch:
        batch.drop_index("ix_chat_messages_conversation_id_id")
        batch.drop_constraint(
            op.f("fk_chat_messages_conversation_id_conversations"), type_="foreignkey"
        )
        batch.drop_column("interrupted")
        batch.drop_column("conversation_id")
    op.drop_index("uq_conversations_owner_id_client_ref", table_name="conversations")
    op.drop_index("ix_conversations_owner_id_updated_at", table_name="conversations")
    op.drop_table("conversations")
