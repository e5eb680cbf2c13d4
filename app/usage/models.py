from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class TokenUsage(Base):
    """The tokens of one answered turn. Kept when the turn's messages are deleted (retention,
    a deleted conversation): the day's spend must not shrink when history does. Deleted with
    the user."""

    __tablename__ = "token_usage"
    __table_args__ = (
        Index("ix_token_usage_user_id_day", "user_id", "day"),
        Index("ix_token_usage_day", "day"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The UTC day the turn was admitted on: the day whose budget it counts against.
    day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    path: Mapped[str] = mapped_column(String(16))  # "chat" | "stream" | "v1" | "mcp"
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    # True when counted by our estimate (app.rag.text.count_tokens), not reported by the LLM.
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)


class TokenReservation(Base):
    """A turn in flight: its prompt tokens plus its `max_tokens`, held against the day's budget
    until the turn ends. A reservation that outlives `expires_at` (its process crashed) no
    longer counts."""

    __tablename__ = "token_reservations"
    __table_args__ = (
        Index("ix_token_reservations_user_id_day", "user_id", "day"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    tokens: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
