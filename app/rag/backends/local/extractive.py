"""The extractive answerer: quotes the knowledge base's own sentences and never invents."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.rag.protocols import GenerationRequest, ScoredChunk
from app.rag.text import split_sentences

if TYPE_CHECKING:
    from app.rag.protocols import Embedder

MAX_ANSWER_SENTENCES = 3
MIN_SENTENCE_SCORE = 0.25
OFFLINE_GENERAL = (
    "The knowledge base has nothing on this, and the offline answer mode only answers from the "
    "knowledge base."
)


class ExtractiveGenerator:
    """Answers with the knowledge base's own sentences closest to the question, cited as [n].

    No language model: it quotes and never invents. Candidates are single sentences and
    adjacent pairs, so "It was first sold in Tallinn." can win together with the sentence that
    says what "it" is. It needs the embedder to rank them.
    """

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @staticmethod
    def _candidates(contexts: Sequence[ScoredChunk]) -> list[tuple[int, tuple[str, ...]]]:
        out: list[tuple[int, tuple[str, ...]]] = []
        for n, chunk in enumerate(contexts, start=1):
            sentences = split_sentences(chunk.text)
            for i, sentence in enumerate(sentences):
                out.append((n, (sentence,)))
                if i:
                    out.append((n, (sentences[i - 1], sentence)))
        return out

    async def generate(self, request: GenerationRequest) -> str:
        candidates = self._candidates(request.contexts)
        if not candidates:
            return OFFLINE_GENERAL
        texts = [" ".join(sentences) for _, sentences in candidates]
        vectors = await self._embedder.embed([request.question, *texts])
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores)
        floor = max(MIN_SENTENCE_SCORE, 0.6 * float(scores[order[0]]))
        used: set[str] = set()
        parts: list[str] = []
        for rank, i in enumerate(order):
            n, sentences = candidates[int(i)]
            if rank and (scores[i] < floor or len(used) + len(sentences) > MAX_ANSWER_SENTENCES):
                continue
            if used.isdisjoint(sentences):
                used.update(sentences)
                parts.append(f"{' '.join(sentences)} [{n}]")
        return " ".join(parts)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        text = await self.generate(request)
        for n, part in enumerate(re.split(r"(?<=\]) ", text)):
            yield part if n == 0 else " " + part

    async def aclose(self) -> None:
        return None
