"""Documents: ingestion (chunk, embed in batches, upsert in batches, track status), access
and removal.

Small documents are indexed inside the request; big ones in a background task, with the
document's `status` showing progress. A document left `processing` by a restart is picked up
again at start-up: vector ids are deterministic, so redoing work overwrites, never duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.documents.chunking import chunk_text
from app.documents.models import Document, DocumentStatus, chunk_id
from app.documents.repository import DocumentRepository
from app.errors import AppError, NotFound
from app.rag.protocols import ChunkRecord, Embedder, VectorStore

logger = logging.getLogger(__name__)

EMBED_BATCH = 64
# Chunking a few MB of text takes a while: do it off the event loop past this size.
THREAD_CHUNKING_CHARS = 20_000


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewDocument:
    title: str
    content: str
    content_type: str = "text/plain"
    filename: str | None = None
    shared: bool = False


Progress = Callable[[int], None]


class DocumentService:
    """Adds documents to the knowledge base, finds the ones a user may see, removes them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedder: Embedder,
        store: VectorStore,
        settings: Settings,
    ) -> None:
        self.sessions = sessions
        self.embedder = embedder
        self.store = store
        self.settings = settings
        self._tasks: set[asyncio.Task[None]] = set()
        # One background document at a time, so chats keep the CPU.
        self._background = asyncio.Semaphore(1)

    async def chunk(self, text: str) -> list[str]:
        def run() -> list[str]:
            return chunk_text(
                text,
                max_tokens=self.settings.chunk_tokens,
                overlap_tokens=self.settings.chunk_overlap_tokens,
            )

        return await asyncio.to_thread(run) if len(text) > THREAD_CHUNKING_CHARS else run()

    async def add(
        self,
        new: NewDocument,
        *,
        owner_id: int | None,
        background: bool = True,
        progress: Progress | None = None,
    ) -> tuple[Document, bool]:
        """Store and index a document; returns it and whether it is new.

        The same content added again by the same owner (or again as shared) returns the
        existing document; a failed one is retried.
        """
        digest = content_hash(new.content)
        async with self.sessions.begin() as session:
            repo = DocumentRepository(session)
            existing = await repo.find_duplicate(
                owner_id=owner_id, shared=new.shared, content_hash=digest
            )
            if existing is None:
                document = await repo.add(
                    Document(
                        owner_id=owner_id,
                        shared=new.shared,
                        title=new.title,
                        filename=new.filename,
                        content_type=new.content_type,
                        content=new.content,
                        content_hash=digest,
                        status=DocumentStatus.PROCESSING,
                        chunks=0,
                        created_at=utcnow(),
                        updated_at=utcnow(),
                    )
                )
            elif existing.status == DocumentStatus.FAILED:
                document = existing
                document.status, document.error = DocumentStatus.PROCESSING, None
            else:
                return existing, False
        chunks = await self.chunk(document.content)
        await self._set(document.id, chunks=len(chunks))
        document.chunks = len(chunks)
        if background and len(chunks) > self.settings.ingest_inline_max_chunks:
            self._spawn(document.id)
            return document, existing is None
        await self._index(document, chunks, progress)
        async with self.sessions() as session:
            refreshed = await session.get(Document, document.id)
        return refreshed or document, existing is None

    async def _set(self, document_id: int, **values: object) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(updated_at=utcnow(), **values)
            )

    async def _index(
        self, document: Document, chunks: Sequence[str], progress: Progress | None = None
    ) -> None:
        """Embed and upsert; marks the document ready or failed (never left processing)."""
        owner = None if document.shared else document.owner_id
        try:
            for start in range(0, len(chunks), EMBED_BATCH):
                batch = chunks[start : start + EMBED_BATCH]
                vectors = await self.embedder.embed(batch)
                await self.store.upsert(
                    [
                        ChunkRecord(
                            id=chunk_id(document.id, start + i),
                            document_id=document.id,
                            owner_id=owner,
                            title=document.title,
                            text=text,
                            vector=vectors[i],
                        )
                        for i, text in enumerate(batch)
                    ]
                )
                if progress:
                    progress(len(batch))
        except asyncio.CancelledError:
            raise  # shutdown: stays processing, resumed at the next start
        except Exception as exc:
            reason = exc.detail if isinstance(exc, AppError) else "internal error while indexing"
            if not isinstance(exc, AppError):
                logger.exception("indexing document %s failed", document.id)
            await self._set(document.id, status=DocumentStatus.FAILED, error=str(reason))
            return
        async with self.sessions.begin() as session:
            still_there = await session.get(Document, document.id)
            if still_there is not None:
                still_there.status = DocumentStatus.READY
                still_there.updated_at = utcnow()
        if still_there is None:  # deleted while we indexed: drop what we just wrote
            await self.store.delete([chunk_id(document.id, i) for i in range(len(chunks))])

    def _spawn(self, document_id: int) -> None:
        task = asyncio.create_task(self._run_background(document_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_background(self, document_id: int) -> None:
        async with self._background:
            async with self.sessions() as session:
                document = await session.get(Document, document_id)
            if document is None or document.status != DocumentStatus.PROCESSING:
                return
            chunks = await self.chunk(document.content)
            if len(chunks) != document.chunks:
                await self._set(document_id, chunks=len(chunks))
            await self._index(document, chunks)

    async def resume_interrupted(self) -> int:
        """Re-queue documents a previous process left `processing`."""
        async with self.sessions() as session:
            ids = await DocumentRepository(session).processing_ids()
        for document_id in ids:
            self._spawn(document_id)
        if ids:
            logger.info("resuming ingestion of %d interrupted document(s)", len(ids))
        return len(ids)

    async def wait_idle(self) -> None:
        """Wait for the background work queued so far (tests, the CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def visible_to(self, user_id: int) -> Sequence[Document]:
        """The user's own documents and the shared ones."""
        async with self.sessions() as session:
            return await DocumentRepository(session).visible_to(user_id)

    async def get_visible(self, document_id: int, user_id: int) -> Document:
        """The document if the user may see it; NotFound otherwise (existence is not revealed)."""
        async with self.sessions() as session:
            document = await DocumentRepository(session).get(document_id)
        if document is None or not (document.shared or document.owner_id == user_id):
            raise NotFound("Document not found.")
        return document

    async def remove(self, document: Document) -> None:
        """Delete the document and its vectors (vectors first: no orphan survives a crash)."""
        await self.store.delete([chunk_id(document.id, i) for i in range(document.chunks)])
        async with self.sessions.begin() as session:
            current = await session.get(Document, document.id)
            if current is not None:
                await DocumentRepository(session).delete(current)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
