"""Retrieve -> prompt -> generate. Knows only the Protocols, never a vendor SDK."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from app.core import metrics
from app.rag import prompts
from app.rag.markup import strip_markup
from app.rag.memory import Condenser, LLMCondenser, RuleCondenser, clean_memory, fit_memory
from app.rag.protocols import (
    Answer,
    ChatTurn,
    Embedder,
    GenerationRequest,
    Generator,
    ScoredChunk,
    Source,
    TokenMeter,
    UsageSink,
    VectorStore,
    Visibility,
    search_store,
)

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 240
# Reciprocal rank fusion of several queries' rankings (Cormack et al. 2009 use k = 60; a small
# k lets the first query's top hits lead). Later queries count less: the first is the most
# specific (the follow-up with its context). Chosen with bench/bench_followup.py, which also
# checks that a change of topic still finds the new topic's document.
RRF_K = 5
QUERY_WEIGHT_DECAY = 0.25


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    top_k: int = 3
    min_score: float = 0.3
    fallback: Literal["refuse", "general"] = "refuse"
    context_tokens: int = 8_192
    max_tokens: int = 512
    temperature: float = 0.2
    # Conversation memory: the recent turns' share of the prompt, and how follow-ups are made
    # standalone before retrieval ("rules" needs no model; "llm" asks the generator).
    memory_tokens: int = 1_500
    condense: Literal["rules", "llm"] = "rules"
    condense_max_tokens: int = 64


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a chunk as plain text (no Markdown heading markers or bullets)."""
    text = " ".join(strip_markup(text).split())
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
        self.condenser: Condenser = (
            LLMCondenser(generator, max_tokens=self.config.condense_max_tokens)
            if self.config.condense == "llm"
            else RuleCondenser()
        )

    async def retrieve(self, question: str, *, visibility: Visibility) -> list[ScoredChunk]:
        """The relevant chunks for `question`, best first (those above the score threshold)."""
        vectors = await self.embedder.embed([question])
        matches = await search_store(
            self.store, question, vectors[0], top_k=self.config.top_k, visibility=visibility
        )
        return [m for m in matches if m.score >= self.config.min_score]

    async def retrieve_fused(
        self, queries: Sequence[str], *, visibility: Visibility
    ) -> list[ScoredChunk]:
        """The `top_k` chunks of several queries' rankings fused, best first; each chunk keeps
        its best cosine score, which must pass the threshold."""
        if len(queries) == 1:
            return await self.retrieve(queries[0], visibility=visibility)
        cfg = self.config
        vectors = await self.embedder.embed(list(queries))
        # A deeper pool than top_k, so a chunk ranked 4th by both queries can still win.
        depth = cfg.top_k * 3
        fused: dict[str, float] = {}
        best: dict[str, ScoredChunk] = {}
        for n, vector in enumerate(vectors):
            weight = QUERY_WEIGHT_DECAY**n
            matches = await search_store(
                self.store, queries[n], vector, top_k=depth, visibility=visibility
            )
            for rank, match in enumerate(matches):
                if match.score < cfg.min_score:
                    continue
                fused[match.id] = fused.get(match.id, 0.0) + weight / (RRF_K + rank + 1)
                if match.id not in best or match.score > best[match.id].score:
                    best[match.id] = match
        order = sorted(fused, key=lambda chunk_id: fused[chunk_id], reverse=True)
        return [best[chunk_id] for chunk_id in order[: cfg.top_k]]

    async def retrieve_with_memory(
        self,
        question: str,
        *,
        visibility: Visibility,
        memory: Sequence[ChatTurn] = (),
        on_usage: UsageSink | None = None,
    ) -> list[ScoredChunk]:
        """Retrieval for a turn of a conversation: the follow-up is made standalone first
        (an LLM condenser reports its call's tokens to `on_usage`)."""
        turns = clean_memory(memory)
        queries = (
            await self.condenser.queries(question, turns, on_usage=on_usage)
            if turns
            else [question]
        )
        return await self.retrieve_fused(queries, visibility=visibility)

    def build_request(
        self, question: str, relevant: list[ScoredChunk], memory: Sequence[ChatTurn] = ()
    ) -> GenerationRequest | None:
        """The generator's input, or None when nothing is relevant and the fallback refuses.

        The question and the context are fitted first; the conversation's newest turns fill
        what is left, up to `memory_tokens`.
        """
        cfg = self.config
        budget = cfg.context_tokens - cfg.max_tokens
        turns = clean_memory(memory)
        if relevant:
            contexts = prompts.fit_context(question, relevant, budget_tokens=budget)
            if contexts:
                base = prompts.grounded_messages(question, contexts)
                history = self._fit_memory(turns, base, budget)
                return GenerationRequest(
                    question=question,
                    contexts=contexts,
                    messages=prompts.grounded_messages(question, contexts, history),
                    max_tokens=cfg.max_tokens,
                    temperature=cfg.temperature,
                )
        if cfg.fallback == "refuse":
            return None
        history = self._fit_memory(turns, prompts.general_messages(question), budget)
        return GenerationRequest(
            question=question,
            contexts=[],
            messages=prompts.general_messages(question, history),
            grounded=False,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
        )

    def _fit_memory(
        self, turns: list[ChatTurn], prompt: list[ChatTurn], budget: int
    ) -> list[ChatTurn]:
        if not turns:
            return []
        left = budget - sum(prompts.turn_cost(turn) for turn in prompt)
        return fit_memory(turns, budget_tokens=max(0, min(self.config.memory_tokens, left)))

    async def stream_answer(
        self,
        question: str,
        *,
        visibility: Visibility,
        memory: Sequence[ChatTurn] = (),
        meter: TokenMeter | None = None,
    ) -> StreamedAnswer:
        """Retrieve now (errors surface here), then generate as the deltas are consumed."""
        metrics.CHAT_TURNS.labels(mode="stream").inc()
        with metrics.retrieval(self.store):
            relevant = await self.retrieve_with_memory(
                question,
                visibility=visibility,
                memory=memory,
                on_usage=meter.add if meter is not None else None,
            )
        request = self.build_request(question, relevant, memory)
        if request is None:
            return StreamedAnswer(_single(prompts.NO_RELEVANT_DOCUMENTS), [], grounded=False)
        request = await metered(request, meter)
        if not request.grounded:
            deltas = _prefixed(prompts.GENERAL_KNOWLEDGE_NOTICE, self.generator.stream(request))
            return StreamedAnswer(deltas, [], grounded=False)
        deltas = metrics.observed_stream(self.generator.stream(request), self.generator)
        return StreamedAnswer(deltas, sources_of(request.contexts))

    async def answer(
        self,
        question: str,
        *,
        visibility: Visibility,
        memory: Sequence[ChatTurn] = (),
        meter: TokenMeter | None = None,
    ) -> Answer:
        """Answer `question`; `memory` is the conversation so far (roles "user"/"assistant")."""
        metrics.CHAT_TURNS.labels(mode="answer").inc()
        with metrics.retrieval(self.store):
            relevant = await self.retrieve_with_memory(
                question,
                visibility=visibility,
                memory=memory,
                on_usage=meter.add if meter is not None else None,
            )
        request = self.build_request(question, relevant, memory)
        if request is None:
            return Answer(text=prompts.NO_RELEVANT_DOCUMENTS, sources=[], grounded=False)
        request = await metered(request, meter)
        with metrics.generation(self.generator):
            text = (await self.generator.generate(request)).strip()
        if not request.grounded:
            return Answer(text=prompts.GENERAL_KNOWLEDGE_NOTICE + text, sources=[], grounded=False)
        return Answer(text=text, sources=sources_of(request.contexts))


async def metered(request: GenerationRequest, meter: TokenMeter | None) -> GenerationRequest:
    """Admit the LLM call with the turn's meter (which may refuse it), and route the
    generator's usage report to it."""
    if meter is None:
        return request
    await meter.admit(request)
    return dataclasses.replace(request, on_usage=meter.report)


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
