from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class ChatMessage(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (
        Index("ix_chat_messages_user_id_timestamp", "user_id", "timestamp"),
        # A conversation's messages in order, and the cursor of their pages.
        Index("ix_chat_messages_conversation_id_id", "conversation_id", "id"),
        {"sqlite_autoincrement": True},  # ids are cursors: never reused
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))  # "user" | "bot"
    content: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # The sources a bot answer cited: [{"document_id", "title", "chunk_id", "score", "snippet"}].
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # A streamed answer cut short because the client went away: the text is what was generated.
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
