from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class User(Base):
    __tablename__ = "users"
    # AUTOINCREMENT: SQLite would otherwise hand a deleted user's id to the next sign-up.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-cased (the service normalises), so plain uniqueness is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    username: Mapped[str] = mapped_column(String(150))
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    # Prompt + completion tokens per UTC day: None follows USER_DAILY_TOKEN_BUDGET, 0 is no limit.
    daily_token_budget: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when an account deletion starts (app.accounts.service.AccountDeletion): a disabled
    # account with it is being deleted, without it only deactivated. `deletion_claimed_until`
    # is the claim of the process doing it; once expired, another finishes the deletion.
    deletion_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    deletion_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RefreshToken(Base):
    """An issued refresh token; `used_at` set once it has been rotated, so reuse is refused.

    Tokens rotated from one login share a `family_id`: logout, or the reuse of a spent token
    (a sign of theft), revokes the whole family.
    """

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
