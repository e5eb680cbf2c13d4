"""Background ingestion without a broker: one claim per document across replicas, resume
from the last finished batch, take-over of a dead worker's expired claim."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update

from app.api.state import State
from app.core.db import utcnow
from app.documents.models import Document, DocumentStatus
from app.documents.service import EMBED_BATCH, DocumentService, NewDocument
from app.rag.backends.local import VectorEntry
from tests.conftest import AppFactory

# Small chunks, so the document spans several embedding batches.
SMALL_CHUNKS: dict[str, Any] = {
    "ingest_inline_max_chunks": 0,
    "chunk_tokens": 32,
    "chunk_overlap_tokens": 0,
}
TEXT = " ".join(f"Fact {n}: the harbour crane number {n} lifts {n} tonnes." for n in range(180))


class CountingEmbedder:
    """Wraps the real embedder and counts the texts it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts = 0

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    async def embed(self, texts: Sequence[str], **kwargs: Any) -> Any:
        self.texts += len(texts)
        return await self.inner.embed(texts, **kwargs)

    async def aclose(self) -> None:
        return None


def _replica(state: State, embedder: Any | None = None) -> DocumentService:
    """Another process's DocumentService on the same database and store."""
    return DocumentService(
        state["sessions"], embedder or state["embedder"], state["store"], state["settings"]
    )


async def _interrupted(state: State, *, indexed: int = 0) -> Document:
    """A big shared document as a crash leaves it: processing, `indexed` chunks done."""
    service = _replica(state)
    document, _ = await service.add(
        NewDocument(title="Cranes", content=TEXT, shared=True), owner_id=None, background=True
    )
    await service.aclose()  # the "crash": its task is cancelled, its claim stays
    async with state["sessions"].begin() as session:
        await session.execute(delete(VectorEntry))
        await session.execute(
            update(Document)
            .where(Document.id == document.id)
            .values(status=DocumentStatus.PROCESSING, claimed_by=None, claimed_until=None)
        )
    if indexed:
        first = _replica(state)
        first.worker_id = "earlier-worker"
        claimed = await first._claim(document.id)
        assert claimed is not None
        chunks = await first.chunk(TEXT)
        await first._index(claimed, chunks[:indexed])  # as far as it got
        async with state["sessions"].begin() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document.id)
                .values(
                    status=DocumentStatus.PROCESSING,
                    indexed_chunks=indexed,
                    claimed_by=None,
                    claimed_until=None,
                )
            )
    async with state["sessions"]() as session:
        refreshed = await session.get(Document, document.id)
    assert refreshed is not None
    return refreshed


async def _vectors(state: State) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count(VectorEntry.seq)))).scalar_one())


async def test_two_replicas_resuming_one_document_index_it_once(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**SMALL_CHUNKS) as (_, state):
        document = await _interrupted(state)
        a, b = CountingEmbedder(state["embedder"]), CountingEmbedder(state["embedder"])
        first, second = _replica(state, a), _replica(state, b)

        outcomes = [await first.run_job(document.id), await second.run_job(document.id)]

        assert outcomes == ["done", "skipped"]
        assert a.texts == document.chunks
        assert b.texts == 0
        assert await _vectors(state) == document.chunks


async def test_resumed_job_starts_at_the_last_finished_batch(app_factory: AppFactory) -> None:
    async with app_factory(**SMALL_CHUNKS) as (_, state):
        document = await _interrupted(state, indexed=EMBED_BATCH)
        assert document.chunks > EMBED_BATCH
        counting = CountingEmbedder(state["embedder"])

        assert await _replica(state, counting).run_job(document.id) == "done"

        assert counting.texts == document.chunks - EMBED_BATCH
        assert await _vectors(state) == document.chunks
        async with state["sessions"]() as session:
            done = await session.get(Document, document.id)
        assert done is not None
        assert (done.status, done.indexed_chunks, done.claimed_by) == ("ready", done.chunks, None)


async def test_live_claim_blocks_and_expired_claim_is_taken_over(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**SMALL_CHUNKS) as (_, state):
        document = await _interrupted(state)
        async with state["sessions"].begin() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document.id)
                .values(claimed_by="dead-worker", claimed_until=utcnow() + timedelta(minutes=5))
            )
        survivor = _replica(state)
        assert await survivor.sweep() == 0  # a live claim: someone else is on it

        async with state["sessions"].begin() as session:
            await session.execute(
                update(Document)
                .where(Document.id == document.id)
                .values(claimed_until=utcnow() - timedelta(seconds=1))
            )
        assert await survivor.sweep() == 1
        await survivor.wait_idle()

        assert await _vectors(state) == document.chunks
        await survivor.aclose()


async def test_job_with_a_deadline_stops_between_batches_and_releases(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**SMALL_CHUNKS) as (_, state):
        document = await _interrupted(state)
        worker = _replica(state)

        assert await worker.run_job(document.id, deadline=0.0) == "more"  # one batch, then stop

        async with state["sessions"]() as session:
            paused = await session.get(Document, document.id)
        assert paused is not None
        assert (paused.indexed_chunks, paused.claimed_by) == (EMBED_BATCH, None)
        assert await worker.run_job(document.id) == "done"
        assert await _vectors(state) == document.chunks
