"""The pipeline's own logic, with in-process test doubles of the three Protocols."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import numpy as np

from app.rag import prompts
from app.rag.pipeline import PipelineConfig, RagPipeline
from app.rag.protocols import (
    ChunkRecord,
    GenerationRequest,
    Matrix,
    Priority,
    ScoredChunk,
    Vector,
    Visibility,
)


class OneHotEmbedder:
    dimension = 4

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        return np.eye(4, dtype=np.float32)[[0] * len(texts)]

    async def aclose(self) -> None:
        return None


class FixedStore:
    def __init__(self, chunks: list[ScoredChunk]) -> None:
        self.chunks = chunks
        self.queries: list[Visibility] = []

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        raise NotImplementedError

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        self.queries.append(visibility)
        return self.chunks[:top_k]

    async def delete(self, ids: Sequence[str]) -> None:
        raise NotImplementedError

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        raise NotImplementedError

    async def remove_orphans(self) -> int:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class RecordingGenerator:
    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> str:
        self.requests.append(request)
        return " answer [1] "

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        yield "answer"

    async def aclose(self) -> None:
        return None


def _chunk(n: int, score: float, words: int = 10) -> ScoredChunk:
    return ScoredChunk(f"c{n}", n, f"Doc {n}", " ".join([f"fact{n}"] * words) + ".", score)


async def test_answer_sends_numbered_context_and_returns_sources() -> None:
    generator = RecordingGenerator()
    store = FixedStore([_chunk(1, 0.9), _chunk(2, 0.8)])
    pipeline = RagPipeline(OneHotEmbedder(), store, generator, PipelineConfig(top_k=2))
    answer = await pipeline.answer("question?", visibility=Visibility.of_user(7))
    assert answer.text == "answer [1]"
    assert [s.chunk_id for s in answer.sources] == ["c1", "c2"]
    assert store.queries == [Visibility.of_user(7)]
    user_turn = generator.requests[0].messages[-1].content
    assert "[1] Doc 1" in user_turn
    assert "[2] Doc 2" in user_turn
    assert user_turn.endswith("Question: question?")


async def test_answer_below_threshold_refuses_without_generating() -> None:
    generator = RecordingGenerator()
    pipeline = RagPipeline(
        OneHotEmbedder(), FixedStore([_chunk(1, 0.1)]), generator, PipelineConfig(min_score=0.3)
    )
    answer = await pipeline.answer("q", visibility=Visibility.of_user(1))
    assert answer.text == prompts.NO_RELEVANT_DOCUMENTS
    assert answer.sources == []
    assert generator.requests == []


async def test_answer_general_fallback_is_flagged() -> None:
    generator = RecordingGenerator()
    pipeline = RagPipeline(
        OneHotEmbedder(), FixedStore([]), generator, PipelineConfig(fallback="general")
    )
    answer = await pipeline.answer("q", visibility=Visibility.of_user(1))
    assert answer.text.startswith(prompts.GENERAL_KNOWLEDGE_NOTICE)
    assert not answer.grounded
    assert generator.requests[0].grounded is False


def test_fit_context_drops_weakest_chunks_first() -> None:
    chunks = [_chunk(1, 0.5, 300), _chunk(2, 0.9, 300), _chunk(3, 0.7, 300)]
    kept = prompts.fit_context("q", chunks, budget_tokens=800)
    assert [c.id for c in kept] == ["c2", "c3"]
    assert prompts.fit_context("q", chunks, budget_tokens=10) == []


async def test_answer_context_over_budget_keeps_best_chunk() -> None:
    generator = RecordingGenerator()
    store = FixedStore([_chunk(1, 0.9, 300), _chunk(2, 0.8, 300), _chunk(3, 0.7, 300)])
    config = PipelineConfig(top_k=3, context_tokens=1000, max_tokens=400)
    answer = await RagPipeline(OneHotEmbedder(), store, generator, config).answer(
        "q", visibility=Visibility.of_user(1)
    )
    assert [s.chunk_id for s in answer.sources] == ["c1"]
    assert generator.requests[0].max_tokens == 400
