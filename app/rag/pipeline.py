"""Retrieve -> prompt -> generate. Knows only the Protocols, never a vendor SDK."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from app.rag import prompts
from app.rag.protocols import (
    Answer,
    Embedder,
    GenerationRequest,
    Generator,
    ScoredChunk,
    Source,
    VectorStore,
)

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 240


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    top_k: int = 3
    min_score: float = 0.3
    fallback: Literal["refuse", "general"] = "refuse"
    context_tokens: int = 8_192
    max_tokens: int = 512
    temperature: float = 0.2


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class RagPipeline:
    """Answers a user's question from the chunks that user may see."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        generator: Generator,
        config: PipelineConfig | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.generator = generator
        self.config = config or PipelineConfig()

    async def retrieve(self, question: str, *, user_id: int) -> list[ScoredChunk]:
        """The relevant chunks for `question`, best first (those above the score threshold)."""
        vectors = await self.embedder.embed([question])
        matches = await self.store.query(vectors[0], top_k=self.config.top_k, user_id=user_id)
        return [m for m in matches if m.score >= self.config.min_score]

    def build_request(self, question: str, relevant: list[ScoredChunk]) -> GenerationRequest | None:
        """The generator's input, or None when nothing is relevant and the fallback refuses."""
        cfg = self.config
        if relevant:
            budget = cfg.context_tokens - cfg.max_tokens
            contexts = prompts.fit_context(question, relevant, budget_tokens=budget)
            if contexts:
                return GenerationRequest(
                    question=question,
                    contexts=contexts,
                    messages=prompts.grounded_messages(question, contexts),
                    max_tokens=cfg.max_tokens,
                    temperature=cfg.temperature,
                )
        if cfg.fallback == "refuse":
            return None
        return GenerationRequest(
            question=question,
            contexts=[],
            messages=prompts.general_messages(question),
            grounded=False,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
        )

    async def stream_answer(self, question: str, *, user_id: int) -> StreamedAnswer:
        """Retrieve now (errors surface here), then generate as the deltas are consumed."""
        relevant = await self.retrieve(question, user_id=user_id)
        request = self.build_request(question, relevant)
        if request is None:
            return StreamedAnswer(_single(prompts.NO_RELEVANT_DOCUMENTS), [], grounded=False)
        if not request.grounded:
            deltas = _prefixed(prompts.GENERAL_KNOWLEDGE_NOTICE, self.generator.stream(request))
            return StreamedAnswer(deltas, [], grounded=False)
        return StreamedAnswer(self.generator.stream(request), sources_of(request.contexts))

    async def answer(self, question: str, *, user_id: int) -> Answer:
        relevant = await self.retrieve(question, user_id=user_id)
        request = self.build_request(question, relevant)
        if request is None:
            return Answer(text=prompts.NO_RELEVANT_DOCUMENTS, sources=[], grounded=False)
        text = (await self.generator.generate(request)).strip()
        if not request.grounded:
            return Answer(text=prompts.GENERAL_KNOWLEDGE_NOTICE + text, sources=[], grounded=False)
        return Answer(text=text, sources=sources_of(request.contexts))


@dataclass(frozen=True, slots=True)
class StreamedAnswer:
    deltas: AsyncIterator[str]
    sources: list[Source]
    grounded: bool = True


async def _single(text: str) -> AsyncIterator[str]:
    yield text


async def _prefixed(prefix: str, deltas: AsyncIterator[str]) -> AsyncIterator[str]:
    yield prefix
    async for delta in deltas:
        yield delta


def sources_of(contexts: Sequence[ScoredChunk]) -> list[Source]:
    return [
        Source(
            document_id=c.document_id,
            title=c.title,
            chunk_id=c.id,
            score=round(float(c.score), 4),
            snippet=snippet(c.text),
        )
        for c in contexts
    ]
