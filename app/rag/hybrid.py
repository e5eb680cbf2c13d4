"""Hybrid retrieval: the dense ranking and the lexical ranking fused by reciprocal rank.

`HybridStore` wraps any vector store (local or Pinecone) and the lexical index in our
database. Writes go to both; `search(question, vector, ...)` runs both searches at once, each
with the visibility rule inside, and fuses them:

    fused(chunk) = dense_weight / (k + dense_rank) + lexical_weight / (k + lexical_rank)

(`app.rag.fusion`, the same fusion a follow-up's several queries use).
Overlapping chunks of one document (neighbours share `CHUNK_OVERLAP_TOKENS` of text) are
deduplicated after fusion, so the context is not the same passage twice.

Each result keeps a cosine `score`, which the pipeline's `RAG_MIN_SCORE` threshold reads: the
dense search's own score, or for a chunk only the lexical search found, its similarity
computed from the stored vector when the store can (`VectorScorer`, the local store), else the
last dense candidate's score, an upper bound of it (Pinecone).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.rag.fusion import reciprocal_rank_fusion
from app.rag.lexical import LexicalHit, LexicalIndex
from app.rag.protocols import ChunkRecord, ScoredChunk, Vector, VectorStore, Visibility

RetrievalMode = Literal["dense", "lexical", "hybrid"]


@dataclass(frozen=True, slots=True)
class FusionConfig:
    mode: RetrievalMode = "hybrid"
    # Chosen with bench/retrieval_eval.py (docs/retrieval.md): a small k lets the top ranks
    # lead, and with dense at 1.5 the lexical first hit still makes the top 3 (1/3 > 1.5/5).
    dense_weight: float = 1.5
    lexical_weight: float = 1.0
    rrf_k: int = 2
    # Each search returns this many candidates (at least top_k) before fusion and dedupe.
    candidates: int = 30


def _lines(text: str) -> set[str]:
    return {line for line in (part.strip() for part in text.split("\n")) if line}


def dedupe_overlapping(chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """Drop a chunk when a better-ranked chunk of the same document shares a sentence with it
    (chunks are sentences joined by newlines; neighbours repeat the overlap's sentences)."""
    kept: list[ScoredChunk] = []
    seen: dict[int, list[set[str]]] = {}
    for chunk in chunks:
        lines = _lines(chunk.text)
        earlier = seen.setdefault(chunk.document_id, [])
        if any(lines & other for other in earlier):
            continue
        earlier.append(lines)
        kept.append(chunk)
    return kept


def fuse(
    dense: Sequence[ScoredChunk],
    lexical: Sequence[LexicalHit],
    *,
    config: FusionConfig,
    similarities: dict[str, float] | None = None,
) -> list[ScoredChunk]:
    """Both rankings fused by weighted reciprocal rank, best first, overlaps removed.

    A chunk found only lexically gets its cosine from `similarities` when given, else the last
    dense candidate's score (its cosine can be no higher, or the dense search had returned it);
    with no dense ranking at all (lexical mode) and no similarity, 1.0: the cosine threshold
    cannot judge it, so it does not filter it.
    """
    chunks: dict[str, ScoredChunk] = {chunk.id: chunk for chunk in dense}
    floor = dense[-1].score if dense else 1.0
    for hit in lexical:
        if hit.id not in chunks:
            score = (similarities or {}).get(hit.id, floor)
            chunks[hit.id] = ScoredChunk(hit.id, hit.document_id, hit.title, hit.text, score)
    order = reciprocal_rank_fusion(
        [
            (config.dense_weight, [chunk.id for chunk in dense]),
            (config.lexical_weight, [hit.id for hit in lexical]),
        ],
        k=config.rrf_k,
    )
    return dedupe_overlapping([chunks[chunk_id] for chunk_id, _ in order])


class VectorScorer(Protocol):
    """Cosine similarities of stored chunks to a vector, for chunks the dense search missed."""

    async def similarities(self, vector: Vector, ids: Sequence[str]) -> dict[str, float]: ...


class StoredVectorScorer:
    """Reads the few vectors asked for from the local store's table (one indexed lookup)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def similarities(self, vector: Vector, ids: Sequence[str]) -> dict[str, float]:
        from app.rag.backends.local import VectorEntry

        if not ids:
            return {}
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(VectorEntry.chunk_id, VectorEntry.embedding).where(
                        VectorEntry.chunk_id.in_(list(ids))
                    )
                )
            ).all()
        query = np.asarray(vector, dtype=np.float32)
        return {
            row.chunk_id: float(np.frombuffer(row.embedding, dtype=np.float32) @ query)
            for row in rows
        }


class HybridStore:
    """A vector store plus the lexical index, searched per `FusionConfig.mode`."""

    def __init__(
        self,
        dense: VectorStore,
        lexical: LexicalIndex,
        config: FusionConfig | None = None,
        *,
        scorer: VectorScorer | None = None,
    ) -> None:
        self.dense = dense
        self.lexical = lexical
        self.config = config or FusionConfig()
        self._scorer = scorer

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        # Vectors first: a batch for a deleted document fails there (local store's foreign
        # key) before the lexical rows are written.
        await self.dense.upsert(records)
        await self.lexical.upsert(records)

    async def delete(self, ids: Sequence[str]) -> None:
        await self.dense.delete(ids)
        await self.lexical.delete(ids)

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        await self.dense.delete_documents(document_ids)
        await self.lexical.delete_documents(document_ids)

    async def remove_orphans(self) -> int:
        removed = await self.dense.remove_orphans()
        return removed + await self.lexical.remove_orphans()

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        """Dense only: callers that have no question text."""
        return await self.dense.query(vector, top_k=top_k, visibility=visibility)

    async def search(
        self, question: str, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        cfg = self.config
        depth = max(top_k, cfg.candidates)
        if cfg.mode == "dense":
            dense = await self.dense.query(vector, top_k=depth, visibility=visibility)
            return dedupe_overlapping(dense)[:top_k]
        if cfg.mode == "lexical":
            hits = await self.lexical.search(question, top_k=depth, visibility=visibility)
            return fuse([], hits, config=cfg, similarities=await self._similar(vector, hits))[
                :top_k
            ]
        dense, hits = await asyncio.gather(
            self.dense.query(vector, top_k=depth, visibility=visibility),
            self.lexical.search(question, top_k=depth, visibility=visibility),
        )
        found = {chunk.id for chunk in dense}
        missed = [hit for hit in hits if hit.id not in found]
        similarities = await self._similar(vector, missed)
        return fuse(dense, hits, config=cfg, similarities=similarities)[:top_k]

    async def _similar(self, vector: Vector, hits: Sequence[LexicalHit]) -> dict[str, float]:
        if self._scorer is None or not hits:
            return {}
        return await self._scorer.similarities(vector, [hit.id for hit in hits])

    async def aclose(self) -> None:
        await self.dense.aclose()


def fusion_config(settings: Settings) -> FusionConfig:
    return FusionConfig(
        mode=settings.retrieval_mode,
        dense_weight=settings.retrieval_dense_weight,
        lexical_weight=settings.retrieval_lexical_weight,
        rrf_k=settings.retrieval_rrf_k,
        candidates=settings.retrieval_candidates,
    )
