from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import Boolean

from app.core.db import Base, UTCDateTime, utcnow


class ApiKeyCollection(Base):
    """One collection of a collection-scoped key's scope. Dies with the key or the
    collection; the key's owner must also still be a member for it to count."""

    __tablename__ = "api_key_collections"

    api_key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ApiKey(Base):
    """A personal API key. Only its keyed hash is stored; the key itself is shown once."""

    __tablename__ = "api_keys"
    # Ids are never reused: a revoked key's id must not come back as someone else's.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # A collection-scoped key retrieves only from its collections (`ApiKeyCollection`), never
    # its owner's private or the shared documents; with every one of them gone, from nothing.
    collection_scoped: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the key may do beyond its owner's own API: "admin" opens /api/admin/ (only for an
    # administrator's key, created with a login token).
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
