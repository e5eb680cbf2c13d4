"""The extractive answerer: quotes the knowledge base's own sentences and never invents."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from app.rag.markup import strip_markup
from app.rag.protocols import GenerationRequest, Matrix, ScoredChunk, Vector
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

    A turn costs one encode: the question's vector comes from the embedder's recent queries
    (retrieval encoded it), and candidate vectors are kept by content hash, so only sentences
    never seen before are encoded (once, the first time their chunk is retrieved).
    """

    def __init__(self, embedder: Embedder, *, cache_vectors: int = 20_000) -> None:
        self._embedder = embedder
        self._cache: OrderedDict[bytes, Vector] = OrderedDict()
        self._cache_max = cache_vectors

    async def _vectors(self, question: str, texts: list[str]) -> tuple[Vector, Matrix]:
        """The question's vector and one row per text, encoding only what is not cached."""
        keys = [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts]
        found: dict[bytes, Vector] = {}
        missing: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if (vector := self._cache.get(key)) is not None:
                self._cache.move_to_end(key)
                found[key] = vector
            else:
                missing[key] = text
        vectors = await self._embedder.embed([question, *missing.values()])
        for key, vector in zip(missing, vectors[1:], strict=True):
            found[key] = vector
            if self._cache_max:
                self._cache[key] = vector.copy()
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)
        return vectors[0], np.stack([found[key] for key in keys])

    @staticmethod
    def _candidates(contexts: Sequence[ScoredChunk]) -> list[tuple[int, tuple[str, ...]]]:
        out: list[tuple[int, tuple[str, ...]]] = []
        for n, chunk in enumerate(contexts, start=1):
            # Quoted as text: no heading lines ("# Office Wi-Fi" is a title, not an answer),
            # bullets or inline markup; a chunk of headings only is quoted without markers.
            sentences = split_sentences(strip_markup(chunk.text, headings=False))
            sentences = sentences or split_sentences(strip_markup(chunk.text))
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
        question, matrix = await self._vectors(request.question, texts)
        scores = matrix @ question
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
