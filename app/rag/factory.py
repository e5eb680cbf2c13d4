"""Settings -> backends. Optional SDKs are imported only when their backend is chosen."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.rag.errors import BackendUnavailable
from app.rag.pipeline import PipelineConfig, RagPipeline
from app.rag.protocols import Embedder, Generator, VectorStore

__all__ = ["BackendUnavailable", "RagBackends", "build_backends"]  # re-exported for callers

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RagBackends:
    embedder: Embedder
    store: VectorStore
    generator: Generator
    pipeline: RagPipeline


async def build_embedder(settings: Settings) -> Embedder:
    if settings.resolved_embedding_backend == "huggingface":
        from app.rag.backends.huggingface import HuggingFaceEmbedder

        return HuggingFaceEmbedder.from_settings(settings)
    from app.rag.backends.local import LocalEmbedder

    return await LocalEmbedder.load(settings)


# Wraps a store outside our database (Pinecone), e.g. to drop chunks of documents that are
# gone; given by the composition root, since the rule lives in a domain this layer never imports.
RemoteStoreWrapper = Callable[[VectorStore], VectorStore]


async def build_store(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    wrap_remote: RemoteStoreWrapper | None = None,
) -> VectorStore:
    """The vector store behind the hybrid store: the lexical index is in our database
    whatever the vector store, and is written in every RETRIEVAL_MODE (switching needs no
    re-indexing)."""
    from app.rag.hybrid import HybridStore, StoredVectorScorer, fusion_config
    from app.rag.lexical import LexicalIndex

    dense: VectorStore
    if settings.resolved_vector_store == "pinecone":
        from app.rag.backends.pinecone import PineconeVectorStore

        dense = await PineconeVectorStore.open(settings)
        if wrap_remote is not None:
            dense = wrap_remote(dense)
        scorer = None  # Pinecone's vectors are not in our database
    else:
        from app.rag.backends.local import LocalVectorStore

        dense = LocalVectorStore(sessions)
        scorer = StoredVectorScorer(sessions)
    return HybridStore(dense, LexicalIndex(sessions), fusion_config(settings), scorer=scorer)


def build_generator(settings: Settings, embedder: Embedder) -> Generator:
    if settings.resolved_llm_backend == "huggingface":
        from app.rag.backends.huggingface import HuggingFaceGenerator

        return HuggingFaceGenerator.from_settings(settings)
    from app.rag.backends.local import ExtractiveGenerator

    return ExtractiveGenerator(embedder, cache_vectors=settings.extractive_cache_vectors)


def pipeline_config(settings: Settings) -> PipelineConfig:
    return PipelineConfig(
        top_k=settings.rag_top_k,
        min_score=settings.rag_min_score,
        rrf_k=settings.retrieval_rrf_k,
        fallback=settings.rag_fallback,
        context_tokens=settings.llm_context_tokens,
        max_tokens=settings.llm_max_tokens,
        temperature=settings.llm_temperature,
        memory_tokens=settings.chat_memory_tokens,
        # Follow-ups: model-free rules for the extractive default, a condensing call with an LLM.
        condense="llm" if settings.resolved_llm_backend == "huggingface" else "rules",
        condense_max_tokens=settings.chat_condense_max_tokens,
        turn_deadline_seconds=settings.chat_turn_deadline_seconds,
        condense_deadline_seconds=settings.chat_condense_deadline_seconds,
    )


async def build_backends(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    stack: AsyncExitStack,
    *,
    wrap_remote: RemoteStoreWrapper | None = None,
) -> RagBackends:
    """Build every backend once; `stack` closes them in reverse order on shutdown."""
    embedder = await build_embedder(settings)
    stack.push_async_callback(embedder.aclose)
    store = await build_store(settings, sessions, wrap_remote=wrap_remote)
    # Off by default (RERANK_BACKEND=none); the wrapper closes the re-ranker with the store.
    from app.rag.rerank import RerankingStore, build_reranker

    reranker = build_reranker(settings, embedder)
    if reranker is not None:
        store = RerankingStore(store, reranker, candidates=settings.rerank_candidates)
    stack.push_async_callback(store.aclose)
    generator = build_generator(settings, embedder)
    stack.push_async_callback(generator.aclose)
    logger.info(
        "RAG backends: embedder=%s vector_store=%s llm=%s",
        type(embedder).__name__,
        type(store).__name__,
        type(generator).__name__,
    )
    pipeline = RagPipeline(embedder, store, generator, pipeline_config(settings))
    return RagBackends(embedder, store, generator, pipeline)
