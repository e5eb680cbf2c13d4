"""Documents: ingestion (chunk, embed in batches, upsert in batches, track status), access
and removal.

Small documents are indexed inside the request; big ones in a background task, with the
document's `status` showing progress. A document left `processing` by a restart is picked up
again at start-up: vector ids are deterministic, so redoing work overwrites, never duplicates.

Removal first marks the document `deleting` (committed): retrieval stops returning it and any
ingestion in flight, here or in another process, stops at its next batch. Then its vectors go,
then the row. A crash in between is finished at the next start-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from app.core import metrics
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import AppError, Conflict, NotFound, PayloadTooLarge, QuotaExceeded
from app.documents.broker import IngestionBroker
from app.documents.chunking import chunk_text, embedding_text, markdown_headings, source_title
from app.documents.formats import ExtractionLimits, is_sectioned
from app.documents.models import Document, DocumentStatus, chunk_id
from app.documents.repository import DocumentRepository
from app.rag.protocols import ChunkRecord, Embedder, VectorStore, Visibility

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
    collection_id: int | None = None  # the caller's role in it is checked by the route


Progress = Callable[[int], None]


class DocumentRemoved(Exception):
    """The document was deleted (or is being deleted) while it was being indexed."""


class ClaimLost(Exception):
    """Another worker took the document over (this one stalled past its claim)."""


JobOutcome = Literal["done", "more", "skipped"]


class DocumentService:
    """Adds documents to the knowledge base, finds the ones a user may see, removes them."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        embedder: Embedder,
        store: VectorStore,
        settings: Settings,
        *,
        broker: IngestionBroker | None = None,
    ) -> None:
        self.sessions = sessions
        self.embedder = embedder
        self.store = store
        self.settings = settings
        # With a broker, `chatbot worker` processes index in the background; without, this
        # process does, in tasks of its own. Either way a document is claimed first.
        self.broker = broker
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._claim_lifetime = timedelta(seconds=settings.ingest_claim_seconds)
        self._sweeper: asyncio.Task[None] | None = None
        self.extraction_limits = ExtractionLimits.from_settings(settings)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # One background document at a time, so chats keep the CPU.
        self._background = asyncio.Semaphore(1)

    async def chunk(self, text: str, content_type: str = "text/plain") -> list[str]:
        """Chunks of a document's text; those of sectioned formats never span two sections."""

        def run() -> list[str]:
            return chunk_text(
                text,
                max_tokens=self.settings.chunk_tokens,
                overlap_tokens=self.settings.chunk_overlap_tokens,
                sections=is_sectioned(content_type),
            )

        return await asyncio.to_thread(run) if len(text) > THREAD_CHUNKING_CHARS else run()

    async def _check_quota(self, session: AsyncSession, owner_id: int, chunks: int) -> None:
        count, total = (
            await session.execute(
                select(func.count(Document.id), func.coalesce(func.sum(Document.chunks), 0)).where(
                    Document.owner_id == owner_id, Document.shared.is_(False)
                )
            )
        ).one()
        if count >= self.settings.user_max_documents:
            raise QuotaExceeded(
                f"You have {count} documents, the most allowed (USER_MAX_DOCUMENTS); "
                "delete some first."
            )
        if total + chunks > self.settings.user_max_chunks:
            raise QuotaExceeded(
                f"This document would take your knowledge base past "
                f"{self.settings.user_max_chunks} chunks (USER_MAX_CHUNKS); delete some first."
            )

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
        existing document; a failed one is retried. Oversized documents (`PayloadTooLarge`)
        and users over their quota (`QuotaExceeded`) are refused before anything is stored.
        """
        if len(new.content) > self.settings.max_document_chars:
            raise PayloadTooLarge(
                f"The document's text is longer than {self.settings.max_document_chars} "
                "characters (MAX_DOCUMENT_CHARS)."
            )
        digest = content_hash(new.content)
        async with self.sessions() as session:
            existing = await DocumentRepository(session).find_duplicate(
                owner_id=owner_id,
                shared=new.shared,
                content_hash=digest,
                collection_id=new.collection_id,
            )
        if existing is not None and existing.status not in (
            DocumentStatus.FAILED,
            DocumentStatus.DELETING,
        ):
            return existing, False
        chunks = await self.chunk(new.content, new.content_type)
        if len(chunks) > self.settings.max_document_chunks:
            raise PayloadTooLarge(
                f"The document makes {len(chunks)} chunks; at most "
                f"{self.settings.max_document_chunks} are accepted (MAX_DOCUMENT_CHUNKS)."
            )
        try:
            document, created = await self._store(new, owner_id, digest, len(chunks))
        except IntegrityError:  # a concurrent identical upload won the unique index
            async with self.sessions() as session:
                winner = await DocumentRepository(session).find_duplicate(
                    owner_id=owner_id,
                    shared=new.shared,
                    content_hash=digest,
                    collection_id=new.collection_id,
                )
            if winner is None:
                raise
            return winner, False
        if background and len(chunks) > self.settings.ingest_inline_max_chunks:
            await self.submit(document.id)
            return document, created
        claimed = await self._claim(document.id)
        if claimed is not None:  # else a sweep elsewhere took it: it will finish it
            await self._index(claimed, chunks, progress)
        async with self.sessions() as session:
            refreshed = await session.get(Document, document.id)
        return refreshed or document, created

    async def _store(
        self, new: NewDocument, owner_id: int | None, digest: str, chunks: int
    ) -> tuple[Document, bool]:
        async with self.sessions.begin() as session:
            repo = DocumentRepository(session)
            existing = await repo.find_duplicate(
                owner_id=owner_id,
                shared=new.shared,
                content_hash=digest,
                collection_id=new.collection_id,
            )
            if existing is not None and existing.status == DocumentStatus.FAILED:
                existing.status, existing.error, existing.chunks = (
                    DocumentStatus.PROCESSING,
                    None,
                    chunks,
                )
                existing.indexed_chunks = 0
                existing.updated_at = utcnow()
                return existing, False
            if existing is not None and existing.status == DocumentStatus.DELETING:
                raise Conflict("An identical document is being deleted; try again shortly.")
            if owner_id is not None and not new.shared:
                await self._check_quota(session, owner_id, chunks)
            document = await repo.add(
                Document(
                    owner_id=owner_id,
                    shared=new.shared and new.collection_id is None,
                    collection_id=new.collection_id,
                    title=new.title,
                    filename=new.filename,
                    content_type=new.content_type,
                    content=new.content,
                    content_hash=digest,
                    status=DocumentStatus.PROCESSING,
                    chunks=chunks,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
            return document, True

    async def _set(self, document_id: int, **values: object) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(updated_at=utcnow(), **values)
            )

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        return and_(
            Document.status == DocumentStatus.PROCESSING,
            or_(
                Document.claimed_until.is_(None),
                Document.claimed_until < now,
                Document.claimed_by == self.worker_id,
            ),
        )

    async def _claim(self, document_id: int) -> Document | None:
        """Take the document for indexing unless a live claim of another worker holds it;
        one atomic UPDATE decides between racing workers and replicas."""
        now = utcnow()
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Document)
                .where(Document.id == document_id, self._claimable(now))
                .values(claimed_by=self.worker_id, claimed_until=now + self._claim_lifetime)
            )
            if getattr(result, "rowcount", 0) != 1:
                return None
            return await session.get(Document, document_id)

    async def _heartbeat(self, document_id: int, indexed: int) -> None:
        """Record progress and renew the claim; before every batch, so a delete (from any
        process) stops ingestion within one batch."""
        now = utcnow()
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Document)
                .where(
                    Document.id == document_id,
                    Document.status == DocumentStatus.PROCESSING,
                    Document.claimed_by == self.worker_id,
                )
                .values(
                    indexed_chunks=indexed,
                    claimed_until=now + self._claim_lifetime,
                    updated_at=now,
                )
            )
            if getattr(result, "rowcount", 0) == 1:
                return
            status = (
                await session.execute(select(Document.status).where(Document.id == document_id))
            ).scalar_one_or_none()
        if status in (None, DocumentStatus.DELETING):
            raise DocumentRemoved
        raise ClaimLost

    async def _release(self, document_id: int) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document_id, Document.claimed_by == self.worker_id)
                .values(claimed_by=None, claimed_until=None)
            )

    async def _index(
        self,
        document: Document,
        chunks: Sequence[str],
        progress: Progress | None = None,
        *,
        start_at: int = 0,
        deadline: float | None = None,
    ) -> bool:
        """Embed and upsert from chunk `start_at` on, under this worker's claim; marks the
        document ready or failed. Returns False if it stopped at `deadline` (monotonic
        seconds) with chunks left: the claim is released for the continuation.

        Before every batch it records progress and checks that the document is still
        wanted and still ours; a deleted document's vectors written so far are removed.
        """
        owner = document.private_owner
        # Titled chunks: embedded and indexed under the title and section heading; the stored
        # text stays the chunk. Applies to what is ingested from now on (re-ingest to refresh).
        headings = (
            markdown_headings(chunks) if is_sectioned(document.content_type) else [""] * len(chunks)
        )
        try:
            for start in range(start_at, len(chunks), EMBED_BATCH):
                await self._heartbeat(document.id, start)
                if deadline is not None and start > start_at and time.monotonic() > deadline:
                    await self._release(document.id)
                    return False
                batch = chunks[start : start + EMBED_BATCH]
                titled = [
                    embedding_text(document.title, headings[start + i], text)
                    for i, text in enumerate(batch)
                ]
                vectors = await self.embedder.embed(titled, priority="bulk")
                try:
                    await self.store.upsert(
                        [
                            ChunkRecord(
                                id=chunk_id(document.id, start + i),
                                document_id=document.id,
                                owner_id=owner,
                                collection_id=document.collection_id,
                                title=source_title(document.title, headings[start + i]),
                                text=text,
                                vector=vectors[i],
                                heading=headings[start + i],
                            )
                            for i, text in enumerate(batch)
                        ]
                    )
                except IntegrityError as exc:  # local store: the document row is gone
                    raise DocumentRemoved from exc
                metrics.CHUNKS_INGESTED.inc(len(batch))
                if progress:
                    progress(len(batch))
            await self._heartbeat(document.id, len(chunks))
            async with self.sessions.begin() as session:
                finished = await session.execute(
                    update(Document)
                    .where(
                        Document.id == document.id,
                        Document.status == DocumentStatus.PROCESSING,
                        Document.claimed_by == self.worker_id,
                    )
                    .values(
                        status=DocumentStatus.READY,
                        claimed_by=None,
                        claimed_until=None,
                        updated_at=utcnow(),
                    )
                )
            if getattr(finished, "rowcount", 0) != 1:
                raise DocumentRemoved
            metrics.DOCUMENTS_INGESTED.labels(outcome="ready").inc()
        except asyncio.CancelledError:
            raise  # shutdown: stays processing; its claim expires and a sweep resumes it
        except ClaimLost:
            logger.warning("document %s was taken over by another worker; stopped", document.id)
        except DocumentRemoved:
            # Vectors written after the delete removed the earlier ones: remove them too.
            await self.store.delete_documents([document.id])
            logger.info("document %s was deleted during indexing; stopped", document.id)
        except Exception as exc:
            metrics.ingestion_failed(exc)
            reason = exc.detail if isinstance(exc, AppError) else "internal error while indexing"
            if not isinstance(exc, AppError):
                logger.exception("indexing document %s failed", document.id)
            await self._set(
                document.id,
                status=DocumentStatus.FAILED,
                error=str(reason),
                claimed_by=None,
                claimed_until=None,
            )
        return True

    def _spawn(self, document_id: int) -> None:
        task = asyncio.create_task(self._run_background(document_id))
        metrics.INGESTION_QUEUE.inc()
        task.add_done_callback(metrics.ingestion_task_done)
        self._tasks[document_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(document_id, None))

    async def _run_background(self, document_id: int) -> None:
        async with self._background:
            await self.run_job(document_id)

    async def submit(self, document_id: int) -> None:
        """Queue a `processing` document for background indexing."""
        if self.broker is not None:
            await self.broker.enqueue(document_id)
        elif document_id not in self._tasks:
            self._spawn(document_id)

    async def run_job(self, document_id: int, *, deadline: float | None = None) -> JobOutcome:
        """Index a document in the background: claim it, then resume from its last finished
        batch (from the start if its chunks changed meanwhile, e.g. other CHUNK_* settings).
        `skipped` if another worker holds it or it is no longer `processing`."""
        document = await self._claim(document_id)
        if document is None:
            return "skipped"
        chunks = await self.chunk(document.content, document.content_type)
        start = document.indexed_chunks if len(chunks) == document.chunks else 0
        if len(chunks) != document.chunks:
            await self._set(document_id, chunks=len(chunks), indexed_chunks=0)
        if start:
            logger.info("resuming document %s at chunk %d of %d", document_id, start, len(chunks))
        finished = await self._index(document, chunks, start_at=start, deadline=deadline)
        return "done" if finished else "more"

    async def sweep(self) -> int:
        """Queue every `processing` document nobody holds: new after a restart, or left by a
        worker that died (its claim expired). Returns how many were queued."""
        async with self.sessions() as session:
            ids = list(
                (
                    await session.execute(
                        select(Document.id)
                        .where(self._claimable(utcnow()))
                        .where(Document.id.not_in(list(self._tasks)))
                        .order_by(Document.id)
                    )
                ).scalars()
            )
        for document_id in ids:
            await self.submit(document_id)
        return len(ids)

    def start_sweeping(self) -> None:
        """Sweep every INGEST_SWEEP_SECONDS, so a replica's crash is recovered by another."""
        interval = self.settings.ingest_sweep_seconds
        if interval <= 0 or self._sweeper is not None:
            return

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.sweep()
                except Exception:  # the database may be down for a while: try next time
                    logger.warning("ingestion sweep failed", exc_info=True)

        self._sweeper = asyncio.create_task(loop())

    async def recover(self) -> None:
        """At start-up: finish deletions a crash interrupted, drop orphaned vectors, and
        re-queue documents a previous process left `processing`."""
        async with self.sessions() as session:
            deleting = list(
                (
                    await session.execute(
                        select(Document.id).where(Document.status == DocumentStatus.DELETING)
                    )
                ).scalars()
            )
        if deleting:
            logger.info("finishing the deletion of %d document(s)", len(deleting))
            await self.purge(deleting)
        await self.store.remove_orphans()
        await self.resume_interrupted()

    async def resume_interrupted(self) -> int:
        """Re-queue documents a previous process left `processing` (and nobody holds)."""
        queued = await self.sweep()
        if queued:
            logger.info("resuming ingestion of %d interrupted document(s)", queued)
        return queued

    async def wait_idle(self) -> None:
        """Wait for the background work queued so far (tests, the CLI)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def visible_to(self, visibility: Visibility) -> Sequence[Document]:
        """The documents `visibility` admits (private, collections', shared), oldest first."""
        async with self.sessions() as session:
            return await DocumentRepository(session).visible_to(visibility)

    async def get_visible(self, document_id: int, visibility: Visibility) -> Document:
        """The document if `visibility` admits it; NotFound otherwise (existence is not
        revealed)."""
        async with self.sessions() as session:
            document = await DocumentRepository(session).get(document_id)
        if (
            document is None
            or document.status == DocumentStatus.DELETING
            or not visibility.admits(document.private_owner, document.collection_id)
        ):
            raise NotFound("Document not found.")
        return document

    async def remove(self, document: Document) -> None:
        """Delete the document and its vectors (see the module docstring for the order)."""
        await self._set(document.id, status=DocumentStatus.DELETING)
        await self.purge([document.id])

    async def mark_owner_removal(self, session: AsyncSession, owner_id: int) -> list[int]:
        """Inside the caller's transaction: the owner's private documents become `deleting`,
        the shared ones it added stay in the shared knowledge base with no owner, and the ones
        it uploaded to collections stay with their collection (the collections it alone owned
        are removed first, by `app.collections`). Returns the ids to purge once that is
        committed."""
        await session.execute(
            update(Document)
            .where(
                Document.owner_id == owner_id,
                or_(Document.shared.is_(True), Document.collection_id.is_not(None)),
            )
            .values(owner_id=None)
        )
        ids = list(
            (
                await session.execute(select(Document.id).where(Document.owner_id == owner_id))
            ).scalars()
        )
        if ids:
            await session.execute(
                update(Document).where(Document.id.in_(ids)).values(status=DocumentStatus.DELETING)
            )
        return ids

    async def mark_collection_removal(
        self, session: AsyncSession, collection_ids: Sequence[int]
    ) -> list[int]:
        """Inside the caller's transaction: every document of these collections becomes
        `deleting`. Returns the ids to purge once that is committed."""
        if not collection_ids:
            return []
        ids = list(
            (
                await session.execute(
                    select(Document.id).where(Document.collection_id.in_(list(collection_ids)))
                )
            ).scalars()
        )
        if ids:
            await session.execute(
                update(Document).where(Document.id.in_(ids)).values(status=DocumentStatus.DELETING)
            )
        return ids

    async def purge(self, document_ids: Sequence[int]) -> None:
        """Delete documents already marked `deleting`: vectors first, then the rows."""
        for document_id in document_ids:
            task = self._tasks.get(document_id)
            if task is not None:
                task.cancel()
        await self.store.delete_documents(document_ids)
        async with self.sessions.begin() as session:
            await session.execute(delete(Document).where(Document.id.in_(list(document_ids))))

    async def aclose(self) -> None:
        tasks = [*self._tasks.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.broker is not None:
            await self.broker.aclose()
