"""Ingestion throughput: the real DocumentService (chunking, local embedder, LocalVectorStore
upserts and document status writes on a fresh SQLite file) versus `SentenceTransformer.encode`
of the same chunks with the same batch size, in the same run. Each document is ingested right
next to the raw encode of its chunks (order alternating), and the ratio is the median over
these pairs, which keeps it steady on a machine shared with other work.

    .venv/bin/python -m bench.bench_ingest [--quick]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.documents.chunking import chunk_text
from app.documents.models import DocumentStatus
from app.documents.service import EMBED_BATCH, DocumentService, NewDocument
from app.rag.backends.local import LocalEmbedder, LocalVectorStore, resolve_model_path
from app.rag.protocols import ChunkRecord, Matrix, Priority
from bench import corpus
from bench.harness import Goal, Result, bench_settings, cli, fresh_database, peak_rss_mb

GOAL_RATIO = 0.9
PARAGRAPHS_PER_DOCUMENT = 40  # about 32 chunks of 175-200 estimated tokens each


class TimedEmbedder:
    """Delegates to the real embedder and adds up the time spent in it."""

    def __init__(self, inner: LocalEmbedder) -> None:
        self.inner = inner
        self.seconds = 0.0

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        start = time.perf_counter()
        try:
            return await self.inner.embed(texts, priority=priority)
        finally:
            self.seconds += time.perf_counter() - start

    async def aclose(self) -> None:
        await self.inner.aclose()


class TimedStore(LocalVectorStore):
    """The real LocalVectorStore, with the time spent in upserts added up."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(sessions)
        self.seconds = 0.0

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        start = time.perf_counter()
        try:
            await super().upsert(records)
        finally:
            self.seconds += time.perf_counter() - start


def load_model(model: str) -> Any:
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    return SentenceTransformer(str(resolve_model_path(model)), device="cpu", local_files_only=True)


@dataclass(frozen=True, slots=True)
class Pair:
    """One document: raw encode of its chunks and its ingestion, timed back to back."""

    chunks: int
    raw_seconds: float
    pipeline_seconds: float

    @property
    def ratio(self) -> float:
        return self.raw_seconds / self.pipeline_seconds


@dataclass(slots=True)
class Breakdown:
    embed_seconds: float = 0.0
    upsert_seconds: float = 0.0


async def ingest_paired(
    path: Path,
    documents: list[tuple[str, str]],
    document_chunks: list[list[str]],
    model: Any,
    embedder: LocalEmbedder,
    *,
    batch_size: int,
    flip: bool,
    breakdown: Breakdown,
) -> list[Pair]:
    """Ingest `documents` into a fresh database, each right before or after (alternating) the
    raw encode of the same chunks, so both sides of a pair see the same machine load."""
    pairs = []
    async with fresh_database(path) as db:
        timed = TimedEmbedder(embedder)
        store = TimedStore(db.sessions)
        service = DocumentService(db.sessions, timed, store, db.settings)
        for n, ((title, text), chunks) in enumerate(zip(documents, document_chunks, strict=True)):
            raw_first = (n % 2 == 0) != flip
            if raw_first:
                raw = await encode_once(model, chunks, batch_size)
            start = time.perf_counter()
            document, created = await service.add(
                NewDocument(title=title, content=text, shared=True), owner_id=None, background=False
            )
            seconds = time.perf_counter() - start
            assert created
            assert document.status == DocumentStatus.READY, document.error
            assert document.chunks == len(chunks)
            if not raw_first:
                raw = await encode_once(model, chunks, batch_size)
            pairs.append(Pair(len(chunks), raw, seconds))
        assert await store.count() == sum(len(c) for c in document_chunks)
        breakdown.embed_seconds += timed.seconds
        breakdown.upsert_seconds += store.seconds
    return pairs


async def encode_once(model: Any, chunks: list[str], batch_size: int) -> float:
    """The baseline: one `encode` call, in a worker thread like the embedder's, so the two
    sides differ only by what the ingestion service does around it."""
    start = time.perf_counter()
    vectors = await asyncio.to_thread(
        model.encode,
        chunks,
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    seconds = time.perf_counter() - start
    assert np.asarray(vectors).shape == (len(chunks), model.get_embedding_dimension())
    return seconds


async def run(quick: bool) -> Result:
    document_count, repeats = (2, 1) if quick else (10, 2)
    settings = bench_settings("sqlite+aiosqlite://")
    batch_size = settings.embedding_batch_size
    documents = corpus.documents(document_count, paragraphs=PARAGRAPHS_PER_DOCUMENT)
    document_chunks = [
        chunk_text(
            text, max_tokens=settings.chunk_tokens, overlap_tokens=settings.chunk_overlap_tokens
        )
        for _, text in documents
    ]
    chunks = [chunk for group in document_chunks for chunk in group]
    # One embed call per document in the service: the raw side then makes the same encode calls.
    assert max(len(group) for group in document_chunks) <= EMBED_BATCH

    start = time.perf_counter()
    model = await asyncio.to_thread(load_model, settings.embedding_model)
    load_seconds = time.perf_counter() - start
    embedder = LocalEmbedder(model, batch_size=batch_size)
    tokens = [len(ids) for ids in model.tokenizer(chunks)["input_ids"]]

    pairs: list[Pair] = []
    breakdown = Breakdown()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        # Warm-up: model kernels, SQLAlchemy mappers and statement caches, aiosqlite threads.
        await encode_once(model, chunks[:batch_size], batch_size)
        warmup = corpus.documents(1, paragraphs=8, seed=1)
        await ingest_paired(
            workdir / "warmup.db",
            warmup,
            [chunk_text(warmup[0][1])],
            model,
            embedder,
            batch_size=batch_size,
            flip=False,
            breakdown=Breakdown(),
        )
        for n in range(repeats):
            pairs += await ingest_paired(
                workdir / f"run{n}.db",
                documents,
                document_chunks,
                model,
                embedder,
                batch_size=batch_size,
                flip=n % 2 == 1,
                breakdown=breakdown,
            )

    total_chunks = sum(p.chunks for p in pairs)
    raw_seconds = sum(p.raw_seconds for p in pairs)
    pipeline_seconds = sum(p.pipeline_seconds for p in pairs)
    raw_rate = total_chunks / raw_seconds
    pipeline_rate = total_chunks / pipeline_seconds
    ratios = [p.ratio for p in pairs]
    ratio = float(np.median(ratios))
    other = pipeline_seconds - breakdown.embed_seconds - breakdown.upsert_seconds
    embed_overhead = breakdown.embed_seconds / raw_seconds

    result = Result(
        name="ingest",
        description="DocumentService (chunk + embed + SQLite upsert) vs raw encode",
        params={
            "documents": document_count,
            "chunks": len(chunks),
            "repeats": repeats,
            "batch_size": batch_size,
            "ingest_embed_call": EMBED_BATCH,
            "chunk_tokens": settings.chunk_tokens,
            "overlap_tokens": settings.chunk_overlap_tokens,
        },
        metrics={
            "model_load_s": load_seconds,
            "raw_chunks_per_s": raw_rate,
            "pipeline_chunks_per_s": pipeline_rate,
            "ratio_median_of_pairs": ratio,
            "ratio_min_of_pairs": min(ratios),
            "ratio_max_of_pairs": max(ratios),
            "ratio_of_totals": raw_seconds / pipeline_seconds,
            "raw_s": raw_seconds,
            "pipeline_s": pipeline_seconds,
            "pipeline_embed_s": breakdown.embed_seconds,
            "pipeline_upsert_s": breakdown.upsert_seconds,
            "pipeline_other_s": other,
            "mean_model_tokens_per_chunk": float(np.mean(tokens)),
            "peak_rss_mb": peak_rss_mb(),
        },
    )
    result.row(
        "corpus",
        f"{document_count} documents -> {len(chunks)} chunks, "
        f"{np.mean(tokens):.0f} model tokens/chunk on average (max {max(tokens)})",
    )
    result.row("raw encode (baseline)", f"{raw_rate:6.1f} chunks/s  ({raw_seconds:.2f} s)")
    result.row("DocumentService.add", f"{pipeline_rate:6.1f} chunks/s  ({pipeline_seconds:.2f} s)")
    result.row(
        "  of which",
        f"embed {breakdown.embed_seconds:.2f} s ({embed_overhead:.2f}x raw), "
        f"upsert {breakdown.upsert_seconds:.3f} s, chunking + document rows {other:.3f} s",
    )
    result.row(
        "ratio of totals",
        f"{raw_seconds / pipeline_seconds:.3f} (pairs {min(ratios):.2f}-{max(ratios):.2f})",
    )
    result.row(
        "peak RSS", f"{peak_rss_mb():.0f} MiB (model load {load_seconds:.1f} s, not counted)"
    )
    result.headline("chunks/s, pipeline vs raw encode", pipeline_rate, raw_rate, "chunks/s")
    result.goals.append(
        Goal("ratio pipeline/raw (median)", ratio, f">= {GOAL_RATIO}", ratio >= GOAL_RATIO)
    )
    result.notes.append(
        f"{len(pairs)} pairs (document ingested / same chunks raw-encoded back to back, order "
        "alternating); fresh SQLite file per repeat"
    )
    return result


def main() -> None:
    cli(run)


if __name__ == "__main__":
    main()
