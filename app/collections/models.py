from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class CollectionRole(StrEnum):
    OWNER = "owner"  # manage members, rename, delete
    EDITOR = "editor"  # add and remove documents
    VIEWER = "viewer"  # search and chat

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: CollectionRole) -> bool:
        return self.rank >= other.rank


_RANKS = {CollectionRole.VIEWER: 0, CollectionRole.EDITOR: 1, CollectionRole.OWNER: 2}


class Collection(Base):
    """A team knowledge base. Its documents are visible to its members (`CollectionMember`)
    whoever uploaded them; it always keeps at least one owner.

    `deleting` is set (committed) before its documents and their vectors go: from then on it
    is invisible to everyone, and a crash mid-way is finished at the next start-up.
    """

    __tablename__ = "collections"
    # Ids are never reused: a collection-scoped API key or a `rag:<id>` model id must never
    # come to name someone else's collection.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(1000), default=None)
    deleting: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CollectionMember(Base):
    """A user's membership of a collection, with their role. Dies with either."""

    __tablename__ = "collection_members"

    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: every request looks up the caller's memberships.
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
