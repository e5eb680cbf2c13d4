from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class Conversation(Base):
    """A thread of chat messages. `updated_at` moves with every message (most recent activity).

    `client_ref` names the conversation on the client's side (an OpenAI `user` value, an API
    key): unique per owner when set, free to be NULL many times.
    """

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_owner_id_updated_at", "owner_id", "updated_at"),
        Index("uq_conversations_owner_id_client_ref", "owner_id", "client_ref", unique=True),
        # AUTOINCREMENT: a deleted conversation's id must never name a new one.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Empty until the first question names it (unless the client gave a title).
    title: Mapped[str] = mapped_column(String(200))
    client_ref: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
