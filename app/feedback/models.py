from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class MessageFeedback(Base):
    """A user's rating of one bot answer; deleted with the message (retention, a deleted
    conversation or account), so it never outlives what it rates."""

    __tablename__ = "message_feedback"
    # The admin export pages newest first: (updated_at, message_id) is its cursor.
    __table_args__ = (
        Index("ix_message_feedback_updated_at_message_id", "updated_at", "message_id"),
    )

    message_id: Mapped[int] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rating: Mapped[str] = mapped_column(String(4))  # "up" | "down"
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
