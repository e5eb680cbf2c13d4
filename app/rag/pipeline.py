"""Retrieve -> prompt -> generate. Knows only the Protocols, never a vendor SDK."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

from app.core import deadline, metrics
from app.rag import prompts
from app.rag.fusion import reciprocal_rank_fusion
from app.rag.markup import strip_markup
from app.rag.memory import Condenser, LLMCondenser, RuleCondenser, clean_memory
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
# A follow-up's several queries are fused by reciprocal rank (app.rag.fusion, RETRIEVAL_RRF_K);
# later queries count less: the first is the most specific (the follow-up with its context).
# Chosen with bench/bench_followup.py, which also checks that a change of topic still finds the
# new topic's document.
QUERY_WEIGHT_DECAY = 0.25


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    top_k: int = 3
    min_score: float = 0.3
    rrf_k: int = 2  # RETRIEVAL_RRF_K
    fallback: Literal["refuse", "general"] = "refuse"
    context_tokens: int = 8_192
    max_tokens: int = 512
    temperature: float = 0.2
    # Conversation memory: the recent turns' share of the prompt, and how follow-ups are made
    # standalone before retrieval ("rules" needs no model; "llm" asks the generator).
    memory_tokens: int = 1_500
    condense: Literal["rules", "llm"] = "rules"
    condense_max_tokens: int = 64
    # One budget per turn for every upstream call's retries (condensing, retrieval, answer),
    # and the condensing call's share of it (app.core.deadline).
    turn_deadline_seconds: float = 20.0
    condense_deadline_seconds: float = 3.0


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
            LLMCondenser(
                generator,
                max_tokens=self.config.condense_max_tokens,
                deadline_seconds=self.config.condense_deadline_seconds,
            )
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
        rankings: list[tuple[float, list[str]]] = []
        best: dict[str, ScoredChunk] = {}
        for n, vector in enumerate(vectors):
            matches = await search_store(
                self.store, queries[n], vector, top_k=depth, visibility=visibility
            )
            passing = [match for match in matches if match.score >= cfg.min_score]
            rankings.append((QUERY_WEIGHT_DECAY**n, [match.id for match in passing]))
            for match in passing:
                if match.id not in best or match.score > best[match.id].score:
                    best[match.id] = match
        order = reciprocal_rank_fusion(rankings, k=cfg.rrf_k)
        return [best[chunk_id] for chunk_id, _ in order[: cfg.top_k]]

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
        """The generator's input, or None when nothing is relevant and the fallback refuses
        (the fit itself is `prompts.fit_prompt`)."""
        cfg = self.config
        fitted = prompts.fit_prompt(
            question,
            relevant,
            clean_memory(memory),
            budget_tokens=cfg.context_tokens - cfg.max_tokens,
            memory_tokens=cfg.memory_tokens,
            general_fallback=cfg.fallback == "general",
        )
        if fitted is None:
            return None
        return GenerationRequest(
            question=question,
            contexts=fitted.contexts,
            messages=fitted.messages,
            grounded=fitted.grounded,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
        )

    async def _prepare(
        self,
        question: str,
        visibility: Visibility,
        memory: Sequence[ChatTurn],
        mode: str,
        meter: TokenMeter | None = None,
    ) -> GenerationRequest | None:
        """The steps a turn shares whichever way it is answered: count it, retrieve with the
        conversation, fit the prompt. Runs under the turn's deadline."""
        metrics.CHAT_TURNS.labels(mode=mode).inc()
        with metrics.retrieval(self.store):
            relevant = await self.retrieve_with_memory(
                question,
                visibility=visibility,
                memory=memory,
                on_usage=meter.add if meter is not None else None,
            )
        return self.build_request(question, relevant, memory)

    async def stream_answer(
        self,
        question: str,
        *,
        visibility: Visibility,
        memory: Sequence[ChatTurn] = (),
        meter: TokenMeter | None = None,
    ) -> StreamedAnswer:
        """Retrieve now (errors surface here), then generate as the deltas are consumed; the
        generation's retries share the turn's deadline with what came before."""
        with deadline.within(self.config.turn_deadline_seconds) as turn:
            request = await self._prepare(question, visibility, memory, "stream", meter)
        if request is None:
            return StreamedAnswer(_single(prompts.NO_RELEVANT_DOCUMENTS), [], grounded=False)
        request = await metered(request, meter)
        deltas = deadline.bounded(self.generator.stream(request), turn)
        if not request.grounded:
            return StreamedAnswer(
                _prefixed(prompts.GENERAL_KNOWLEDGE_NOTICE, deltas), [], grounded=False
            )
        deltas = metrics.observed_stream(deltas, self.generator)
        return StreamedAnswer(deltas, sources_of(request.contexts))

    async def answer(
        self,
        question: str,
        *,
        visibility: Visibility,
        memory: Sequence[ChatTurn] = (),
        meter: TokenMeter | None = None,
    ) -> Answer:
        """Answer `question`; `memory` is the conversation so far (roles "user"/"assistant").
        Every upstream call of the turn retries within one deadline, `turn_deadline_seconds`."""
        with deadline.within(self.config.turn_deadline_seconds):
            request = await self._prepare(question, visibility, memory, "answer", meter)
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
