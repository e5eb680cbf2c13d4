from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class AuditEntry(Base):
    """One administrator action: who, what, on which target, when. The actor's email is
    copied so the entry still names them after their account is gone; entries are purged after
    AUDIT_RETENTION_DAYS."""

    __tablename__ = "admin_audit"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are cursors: never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_email: Mapped[str] = mapped_column(String(320))
    # e.g. "user.update", "user.delete", "apikey.create_admin"
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # What changed ({"is_active": [true, false]}); never secrets, passwords or message text.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
