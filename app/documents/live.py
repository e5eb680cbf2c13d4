"""A vector-store wrapper for stores outside our database (Pinecone): queries never return
chunks of documents that are gone or being deleted, whatever a crash left in the store, nor
chunks whose document the caller may not see (the store's own filter already applies the
rule; this checks it against the documents table too)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.documents.models import Document, DocumentStatus
from app.documents.repository import visible_clause
from app.rag.protocols import ForwardingStore, ScoredChunk, Vector, VectorStore, Visibility


class LiveDocumentsStore(ForwardingStore):
    """Delegates to `inner`; after each query, one primary-key lookup drops dead documents
    and any the visibility rule does not admit."""

    def __init__(self, inner: VectorStore, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(inner)
        self._sessions = sessions

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        chunks = await self.inner.query(vector, top_k=top_k, visibility=visibility)
        if not chunks:
            return chunks
        async with self._sessions() as session:
            live = set(
                (
                    await session.execute(
                        select(Document.id).where(
                            Document.id.in_({c.document_id for c in chunks}),
                            Document.status != DocumentStatus.DELETING,
                            visible_clause(visibility),
                        )
                    )
                ).scalars()
            )
        return [chunk for chunk in chunks if chunk.document_id in live]


def live_documents(
    sessions: async_sessionmaker[AsyncSession],
) -> Callable[[VectorStore], VectorStore]:
    """The wrapper `app.rag.factory` applies to a store outside our database."""
    return lambda inner: LiveDocumentsStore(inner, sessions)
