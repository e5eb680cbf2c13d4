from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow


class DocumentStatus:
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    # Being removed: invisible to retrieval and ingestion stops; a crash mid-way is finished at
    # the next start-up.
    DELETING = "deleting"


class Document(Base):
    """A knowledge-base document: private to `owner_id`, or in the collection `collection_id`
    (then `owner_id` is only who uploaded it, None once that account is deleted), or `shared`
    by an administrator (visible to every user). Its kind never changes.

    The extracted text is kept so that interrupted ingestion can resume after a restart and
    the document can be re-indexed into another vector store.
    """

    __tablename__ = "documents"
    __table_args__ = (
        # The same content is one document per owner, per collection, and one among the
        # shared documents: enforced here, since concurrent identical uploads all pass a
        # check-then-insert.
        Index(
            "uq_documents_private_content",
            "owner_id",
            "content_hash",
            unique=True,
            sqlite_where=text("NOT shared AND collection_id IS NULL"),
            postgresql_where=text("NOT shared AND collection_id IS NULL"),
        ),
        Index(
            "uq_documents_collection_content",
            "collection_id",
            "content_hash",
            unique=True,
            sqlite_where=text("collection_id IS NOT NULL"),
            postgresql_where=text("collection_id IS NOT NULL"),
        ),
        Index(
            "uq_documents_shared_content",
            "content_hash",
            unique=True,
            sqlite_where=text("shared"),
            postgresql_where=text("shared"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # The database drops a collection's rows with it; the service deletes vectors first.
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), default=None, index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    filename: Mapped[str | None] = mapped_column(String(300), default=None)
    content_type: Mapped[str] = mapped_column(String(100))
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.PROCESSING)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    # Ingestion progress and its claim: the chunks already indexed (a resumed job starts
    # there), and which worker holds the document until when (renewed after every batch).
    indexed_chunks: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def private_owner(self) -> int | None:
        """The user whose private document this is, None for shared and collection ones
        (what `ChunkRecord.owner_id` carries)."""
        return None if self.shared or self.collection_id is not None else self.owner_id


def chunk_id(document_id: int, ordinal: int) -> str:
    """Deterministic vector ids: re-ingesting a document overwrites instead of duplicating."""
    return f"doc{document_id}-{ordinal}"
