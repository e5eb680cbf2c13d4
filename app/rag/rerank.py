"""A second stage that re-orders the first stage's candidates (issue 18).

The first stage (dense, lexical or hybrid search) is cheap and recalls broadly; a `Reranker`
reads each candidate against the question and re-orders them. `RerankingStore` wraps any store
that searches by text: it asks it for `RERANK_CANDIDATES` chunks, re-ranks them and keeps the
first `top_k`. Each chunk keeps its cosine `score`, which `RAG_MIN_SCORE` still reads, so the
threshold means the same with or without re-ranking.

Backends (`RERANK_BACKEND`):

* `none` (default): no second stage. Re-ranking stays off until it wins on held-out corpora
  (docs/retrieval.md, `python -m bench.retrieval_eval --all`).
* `local`: `SentenceReranker`, the embedder's similarity of the question to the candidate's
  best sentence, mixed with the first stage's order: no new model, and a long chunk with one
  sentence that answers is not diluted by the rest.
* `tei`: `TEIReranker`, a cross-encoder behind Hugging Face text-embeddings-inference's
  `POST /rerank` (`{"query", "texts", "truncate"}` -> `[{"index", "score"}, ...]`). Upstream
  failures map to 502/503/504 like the other backends.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
import numpy as np

from app.core import deadline
from app.core.config import Settings
from app.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.rag.errors import BackendUnavailable
from app.rag.protocols import (
    Embedder,
    ForwardingStore,
    ScoredChunk,
    TextSearch,
    Vector,
    VectorStore,
    Visibility,
)
from app.rag.text import split_sentences

logger = logging.getLogger(__name__)

# Sentences of one candidate that are scored: a chunk is at most CHUNK_TOKENS long, so this
# only bounds a pathological chunk of many one-word lines.
MAX_SENTENCES_PER_CHUNK = 40
# A sentence shorter than this many words ("Example:", "See also") says too little to score.
MIN_SENTENCE_WORDS = 3


class Reranker(Protocol):
    """Re-orders candidate chunks for a question, best first; never adds or drops one."""

    async def rerank(self, question: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]: ...

    async def aclose(self) -> None: ...


def chunk_sentences(text: str) -> list[str]:
    """The sentences of a chunk that are long enough to score (the chunk itself if none)."""
    found = [
        sentence
        for line in text.split("\n")
        for sentence in split_sentences(line)
        if len(sentence.split()) >= MIN_SENTENCE_WORDS
    ]
    return found[:MAX_SENTENCES_PER_CHUNK] or [text]


class SentenceReranker:
    """Local scorer: the question's cosine to each candidate's best sentence.

    The final order mixes that with the first stage's reciprocal rank,
    `(1 - prior) * best_sentence + prior / rank`, so a re-ranker that is unsure keeps the
    first stage's order."""

    def __init__(self, embedder: Embedder, *, prior: float = 0.5) -> None:
        self._embedder = embedder
        self._prior = prior

    async def rerank(self, question: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        if len(chunks) < 2:
            return list(chunks)
        sentences = [chunk_sentences(chunk.text) for chunk in chunks]
        flat = [question, *(s for group in sentences for s in group)]
        vectors = await self._embedder.embed(flat, priority="query")
        query, rest = vectors[0], vectors[1:]
        similarity = rest @ query
        best: list[float] = []
        start = 0
        for group in sentences:
            best.append(float(np.max(similarity[start : start + len(group)])))
            start += len(group)
        mixed = [
            (1 - self._prior) * value + self._prior / rank
            for rank, value in enumerate(best, start=1)
        ]
        order = sorted(range(len(chunks)), key=lambda n: mixed[n], reverse=True)
        return [chunks[n] for n in order]

    async def aclose(self) -> None:
        return None  # the embedder belongs to the caller


class TEIReranker:
    """A cross-encoder served by text-embeddings-inference (`POST {url}/rerank`).

    One HTTP client per app, closed by `aclose`. The request's timeout is the smaller of
    `timeout` and what is left of the turn's deadline (`app.core.deadline`)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url.rstrip("/") + "/rerank"
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.AsyncClient(headers=headers)

    @classmethod
    def from_settings(cls, settings: Settings) -> TEIReranker:
        if not settings.rerank_url:
            raise BackendUnavailable("RERANK_BACKEND=tei needs RERANK_URL (the TEI server).")
        key = settings.rerank_api_key.get_secret_value() if settings.rerank_api_key else None
        return cls(settings.rerank_url, timeout=settings.rerank_timeout_seconds, api_key=key)

    def _request_timeout(self) -> float:
        left = deadline.remaining()
        if left is not None and left <= 0:
            raise UpstreamTimeout("The re-ranker was not called: the turn's deadline passed.")
        return self._timeout if left is None else min(self._timeout, left)

    async def rerank(self, question: str, chunks: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        if len(chunks) < 2:
            return list(chunks)
        body = {
            "query": question,
            "texts": [chunk.text for chunk in chunks],
            "truncate": True,
            "raw_scores": False,
            "return_text": False,
        }
        try:
            response = await self._client.post(
                self._url, json=body, timeout=self._request_timeout()
            )
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("The re-ranker timed out.") from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"The re-ranker is unreachable: {type(exc).__name__}."
            ) from exc
        if response.status_code != 200:
            # The body is not logged: TEI echoes inputs in some errors.
            logger.warning("re-ranker answered HTTP %s", response.status_code)
            if response.status_code == 504:
                raise UpstreamTimeout("The re-ranker timed out (HTTP 504).")
            if response.status_code in (429, 503):
                raise UpstreamUnavailable(f"The re-ranker is busy (HTTP {response.status_code}).")
            raise UpstreamError(f"The re-ranker failed with HTTP {response.status_code}.")
        scores = _parse_scores(response, len(chunks))
        order = sorted(range(len(chunks)), key=lambda n: scores[n], reverse=True)
        return [chunks[n] for n in order]

    async def aclose(self) -> None:
        await self._client.aclose()


def _parse_scores(response: httpx.Response, count: int) -> list[float]:
    """TEI's answer, `[{"index": i, "score": s}, ...]`, as one score per candidate; anything
    else (a missing or repeated index, a score that is not a finite number) is a 502."""
    try:
        payload: Any = response.json()
    except ValueError as exc:
        raise UpstreamError("The re-ranker returned a malformed answer.") from exc
    scores: dict[int, float] = {}
    if isinstance(payload, list):
        for item in payload:
            if not isinstance(item, dict):
                break
            index, value = item.get("index"), item.get("score")
            if (
                isinstance(index, int)
                and not isinstance(index, bool)
                and 0 <= index < count
                and index not in scores
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                scores[index] = float(value)
            else:
                break
    if len(scores) != count:
        raise UpstreamError("The re-ranker returned a malformed answer.")
    return [scores[n] for n in range(count)]


class RerankingStore(ForwardingStore):
    """A store that searches by text, its candidates re-ranked.

    Writes and vector-only queries go straight to the inner store; `search` asks it for
    `candidates` chunks (at least `top_k`), re-ranks them and keeps the first `top_k`."""

    def __init__(self, inner: VectorStore, reranker: Reranker, *, candidates: int = 20) -> None:
        if not isinstance(inner, TextSearch):
            raise BackendUnavailable("Re-ranking needs a store that searches by text (hybrid).")
        super().__init__(inner)
        self.reranker = reranker
        self.candidates = candidates

    async def search(
        self, question: str, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        assert isinstance(self.inner, TextSearch)  # checked in __init__
        found = await self.inner.search(
            question, vector, top_k=max(top_k, self.candidates), visibility=visibility
        )
        return (await self.reranker.rerank(question, found))[:top_k]

    async def aclose(self) -> None:
        try:
            await self.reranker.aclose()
        finally:
            await self.inner.aclose()


def build_reranker(settings: Settings, embedder: Embedder) -> Reranker | None:
    """The configured re-ranker, or None (`RERANK_BACKEND=none`, the default)."""
    if settings.rerank_backend == "local":
        return SentenceReranker(embedder, prior=settings.rerank_prior)
    if settings.rerank_backend == "tei":
        return TEIReranker.from_settings(settings)
    return None
