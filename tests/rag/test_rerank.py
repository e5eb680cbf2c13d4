"""The re-ranking stage: the TEI backend against a wire fake on 127.0.0.1 (tests/fakes/tei.py),
the local sentence scorer, and the store wrapper that puts either behind hybrid search."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from app.core import deadline
from app.core.config import Settings
from app.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.rag.errors import BackendUnavailable
from app.rag.protocols import ChunkRecord, Matrix, Priority, ScoredChunk, Vector, Visibility
from app.rag.rerank import (
    RerankingStore,
    SentenceReranker,
    TEIReranker,
    build_reranker,
    chunk_sentences,
)
from tests.fakes.server import serve
from tests.fakes.tei import FakeTEI

VISIBLE = Visibility.of_user(1)


def chunk(n: int, text: str, score: float = 0.5) -> ScoredChunk:
    return ScoredChunk(f"c{n}", n, f"doc {n}", text, score)


CANDIDATES = [
    chunk(1, "The weather in spring is mild."),
    chunk(2, "Use fstrim to discard unused blocks on a mounted filesystem."),
    chunk(3, "Unused blocks are discarded by fstrim on a mounted filesystem weekly."),
]


@pytest.fixture
def tei() -> Iterator[tuple[FakeTEI, str]]:
    fake = FakeTEI()
    with serve(fake.app) as url:
        yield fake, url


async def test_tei_rerank_orders_by_the_servers_scores_and_sends_its_wire_format(
    tei: tuple[FakeTEI, str],
) -> None:
    fake, url = tei
    reranker = TEIReranker(url, api_key="tei-secret")
    try:
        ranked = await reranker.rerank("discard unused blocks mounted filesystem", CANDIDATES)
    finally:
        await reranker.aclose()

    assert [c.id for c in ranked][-1] == "c1"
    assert {c.id for c in ranked} == {"c1", "c2", "c3"}
    assert [c.score for c in ranked] == [0.5, 0.5, 0.5]  # the cosine is kept for the threshold
    body = fake.requests[0]
    assert body["query"] == "discard unused blocks mounted filesystem"
    assert body["texts"] == [c.text for c in CANDIDATES]
    assert body["truncate"] is True
    assert fake.headers[0]["authorization"] == "Bearer tei-secret"


async def test_tei_rerank_one_candidate_calls_nothing(tei: tuple[FakeTEI, str]) -> None:
    fake, url = tei
    reranker = TEIReranker(url)
    try:
        ranked = await reranker.rerank("anything", CANDIDATES[:1])
    finally:
        await reranker.aclose()

    assert ranked == CANDIDATES[:1]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, UpstreamUnavailable),
        (429, UpstreamUnavailable),
        (504, UpstreamTimeout),
        (500, UpstreamError),
    ],
)
async def test_tei_rerank_upstream_status_maps_to_stable_error(
    tei: tuple[FakeTEI, str], status: int, error: type[UpstreamError]
) -> None:
    fake, url = tei
    fake.status = status
    reranker = TEIReranker(url)
    try:
        with pytest.raises(error) as raised:
            await reranker.rerank("q", CANDIDATES)
    finally:
        await reranker.aclose()

    assert type(raised.value) is error


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"index": 0, "score": 1}',
        '[{"index": 0, "score": 1}]',
        '[{"index": 0, "score": 1}, {"index": 0, "score": 1}, {"index": 1, "score": 1}]',
        '[{"index": 0, "score": 1}, {"index": 1, "score": 1}, {"index": 7, "score": 1}]',
        '[{"index": 0, "score": 1}, {"index": 1, "score": "high"}, {"index": 2, "score": 1}]',
        '[{"index": 0, "score": 1}, {"index": 1, "score": NaN}, {"index": 2, "score": 1}]',
        '[{"index": true, "score": 1}, {"index": 1, "score": 1}, {"index": 2, "score": 1}]',
    ],
)
async def test_tei_rerank_malformed_answer_is_upstream_error(
    tei: tuple[FakeTEI, str], body: str
) -> None:
    fake, url = tei
    fake.body = body
    reranker = TEIReranker(url)
    try:
        with pytest.raises(UpstreamError) as raised:
            await reranker.rerank("q", CANDIDATES)
    finally:
        await reranker.aclose()

    assert type(raised.value) is UpstreamError
    assert raised.value.status_code == 502


async def test_tei_rerank_slow_server_times_out_within_the_turn_deadline(
    tei: tuple[FakeTEI, str],
) -> None:
    fake, url = tei
    fake.delay = 2.0
    reranker = TEIReranker(url, timeout=30.0)
    try:
        with deadline.within(0.2), pytest.raises(UpstreamTimeout):
            await reranker.rerank("q", CANDIDATES)
    finally:
        await reranker.aclose()


async def test_tei_rerank_unreachable_server_is_unavailable() -> None:
    with serve(FakeTEI().app) as url:
        pass  # the server is gone: nothing listens on its port any more
    reranker = TEIReranker(url, timeout=2.0)
    try:
        with pytest.raises(UpstreamUnavailable):
            await reranker.rerank("q", CANDIDATES)
    finally:
        await reranker.aclose()


class WordEmbedder:
    """One dimension per known word, L2-normalised: cosine is word overlap."""

    WORDS = ("fstrim", "discard", "blocks", "weather", "spring", "mounted", "unused")
    dimension = len(WORDS)

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for n, text in enumerate(texts):
            for m, word in enumerate(self.WORDS):
                out[n, m] = float(word in text.lower())
            norm = np.linalg.norm(out[n])
            out[n] = out[n] / norm if norm else out[n]
        return out

    async def aclose(self) -> None:
        return None


async def test_sentence_rerank_best_sentence_lifts_a_long_chunk_over_a_vague_one() -> None:
    long_chunk = chunk(
        4,
        "Mount options are listed below.\nThe weather in spring is mild in most places.\n"
        "Run fstrim to discard unused blocks.",
    )
    vague = chunk(5, "Blocks and spring weather and other mounted things here.")
    reranker = SentenceReranker(WordEmbedder(), prior=0.2)

    ranked = await reranker.rerank("fstrim discard unused blocks", [vague, long_chunk])

    assert [c.id for c in ranked] == ["c4", "c5"]


async def test_sentence_rerank_full_prior_keeps_the_first_stage_order() -> None:
    reranker = SentenceReranker(WordEmbedder(), prior=1.0)

    ranked = await reranker.rerank("fstrim discard unused blocks", CANDIDATES)

    assert ranked == CANDIDATES


def test_chunk_sentences_short_lines_skipped_text_kept_when_nothing_left() -> None:
    assert chunk_sentences("Example:\nThis line has enough words.") == [
        "This line has enough words."
    ]
    assert chunk_sentences("See also") == ["See also"]


class TextStore:
    """A store searching by text that returns its chunks in a fixed order."""

    def __init__(self, chunks: list[ScoredChunk]) -> None:
        self.chunks = chunks
        self.asked: list[int] = []
        self.closed = False

    async def search(
        self, question: str, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        self.asked.append(top_k)
        return self.chunks[:top_k]

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        return self.chunks[:top_k]

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        return None

    async def delete(self, ids: Sequence[str]) -> None:
        return None

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        return None

    async def remove_orphans(self) -> int:
        return 0

    async def aclose(self) -> None:
        self.closed = True


async def test_reranking_store_asks_for_candidates_and_trims_to_top_k(
    tei: tuple[FakeTEI, str],
) -> None:
    _, url = tei
    inner = TextStore(CANDIDATES)
    store = RerankingStore(inner, TEIReranker(url), candidates=3)
    try:
        found = await store.search(
            "discard unused blocks", np.zeros(4, dtype=np.float32), top_k=1, visibility=VISIBLE
        )
    finally:
        await store.aclose()

    assert inner.asked == [3]
    assert len(found) == 1
    assert found[0].id in {"c2", "c3"}
    assert inner.closed


async def test_reranking_store_without_text_search_is_refused() -> None:
    class VectorOnly:
        async def query(
            self, vector: Vector, *, top_k: int, visibility: Visibility
        ) -> list[ScoredChunk]:
            return []

    with pytest.raises(BackendUnavailable):
        RerankingStore(VectorOnly(), SentenceReranker(WordEmbedder()))  # type: ignore[arg-type]


async def test_build_reranker_default_is_off_and_tei_needs_a_url() -> None:
    embedder = WordEmbedder()

    assert build_reranker(Settings(_env_file=None), embedder) is None
    assert isinstance(
        build_reranker(Settings(_env_file=None, rerank_backend="local"), embedder),
        SentenceReranker,
    )
    with pytest.raises(BackendUnavailable):
        build_reranker(Settings(_env_file=None, rerank_backend="tei"), embedder)
