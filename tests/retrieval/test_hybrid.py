"""Rank fusion, dedupe of overlapping chunks, and the hybrid store over the local store."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.documents.chunking import embedding_text
from app.rag.backends.local import LocalVectorStore
from app.rag.hybrid import (
    FusionConfig,
    HybridStore,
    RetrievalMode,
    StoredVectorScorer,
    dedupe_overlapping,
    fuse,
)
from app.rag.lexical import LexicalHit, LexicalIndex
from app.rag.protocols import ScoredChunk, Visibility, search_store
from tests.retrieval.conftest import record, unit


def _chunk(chunk_id: str, document_id: int, text: str = "", score: float = 0.5) -> ScoredChunk:
    return ScoredChunk(chunk_id, document_id, "t", text or chunk_id, score)


def _hit(chunk_id: str, document_id: int, text: str = "") -> LexicalHit:
    return LexicalHit(chunk_id, document_id, "t", text or chunk_id, 1.0)


def test_fuse_chunk_ranked_by_both_beats_chunks_ranked_by_one() -> None:
    dense = [_chunk("a", 1, score=0.9), _chunk("b", 2, score=0.8)]
    lexical = [_hit("c", 3), _hit("b", 2)]

    fused = fuse(dense, lexical, config=FusionConfig())

    assert [c.id for c in fused] == ["b", "a", "c"]
    assert fused[0].score == 0.8  # the dense cosine is kept


def test_fuse_weights_decide_between_the_two_first_places() -> None:
    dense, lexical = [_chunk("a", 1)], [_hit("c", 3)]

    lexical_first = fuse(dense, lexical, config=FusionConfig(lexical_weight=2.0))
    dense_first = fuse(dense, lexical, config=FusionConfig(dense_weight=2.0))

    assert [c.id for c in lexical_first] == ["c", "a"]
    assert [c.id for c in dense_first] == ["a", "c"]


def test_fuse_lexical_only_chunk_gets_similarity_else_last_dense_score() -> None:
    dense = [_chunk("a", 1, score=0.9), _chunk("b", 2, score=0.4)]

    known = fuse(dense, [_hit("c", 3)], config=FusionConfig(), similarities={"c": 0.2})
    bounded = fuse(dense, [_hit("c", 3)], config=FusionConfig())

    assert {c.id: c.score for c in known}["c"] == 0.2
    assert {c.id: c.score for c in bounded}["c"] == 0.4


def test_dedupe_drops_worse_neighbour_sharing_a_sentence() -> None:
    chunks = [
        _chunk("d1-1", 1, "Second sentence.\nThird sentence."),
        _chunk("d2-0", 2, "Second sentence.\nOther document."),
        _chunk("d1-0", 1, "First sentence.\nSecond sentence."),
        _chunk("d1-5", 1, "Far away sentence."),
    ]

    assert [c.id for c in dedupe_overlapping(chunks)] == ["d1-1", "d2-0", "d1-5"]


def test_embedding_text_puts_title_and_heading_before_the_text() -> None:
    assert embedding_text("Handbook", "Leave > Carry-over", "It is 5 days.") == (
        "Handbook — Leave — Carry-over\nIt is 5 days."
    )
    assert embedding_text("Handbook", "Handbook > Leave", "It is 25 days.") == (
        "Handbook — Leave\nIt is 25 days."
    )
    assert embedding_text("Handbook", "", "It is 25 days.") == "Handbook\nIt is 25 days."


def _direction(base: np.ndarray, seed: int, closeness: float) -> np.ndarray:
    noise = unit(seed)
    vector = closeness * base + (1 - closeness) * noise
    return vector / np.linalg.norm(vector)


@pytest.fixture
async def hybrid(sessions: async_sessionmaker[AsyncSession]) -> HybridStore:
    store = HybridStore(
        LocalVectorStore(sessions), LexicalIndex(sessions), scorer=StoredVectorScorer(sessions)
    )
    query = unit(1000)
    # Dense favours the "near" chunks; only "code" names the identifier asked for.
    await store.upsert(
        [
            record(f"near{n}", n, f"A general remark number {n}.", vector=_direction(query, n, 0.9))
            for n in range(1, 6)
        ]
        + [record("code", 6, "Error E1042: quota exhausted.", vector=_direction(query, 6, 0.3))]
        + [
            record(
                "secret",
                7,
                "Error E1042 quota exhausted E1042.",
                owner=2,
                vector=_direction(query, 7, 0.95),
            )
        ]
    )
    return store


async def _search(store: HybridStore, mode: RetrievalMode, top_k: int = 3) -> list[ScoredChunk]:
    store.config = FusionConfig(mode=mode, candidates=3)
    return await store.search(
        "error E1042", unit(1000), top_k=top_k, visibility=Visibility.of_user(1)
    )


async def test_search_hybrid_finds_the_identifier_dense_ranks_low(hybrid: HybridStore) -> None:
    dense = await _search(hybrid, "dense")
    lexical = await _search(hybrid, "lexical")
    fused = await _search(hybrid, "hybrid")

    assert "code" not in {c.id for c in dense}
    assert lexical[0].id == "code"
    assert "code" in {c.id for c in fused}  # the lexical first hit makes the top 3
    assert {c.id for c in fused} & {c.id for c in dense}


async def test_search_lexical_only_hit_carries_its_real_cosine(hybrid: HybridStore) -> None:
    fused = await _search(hybrid, "hybrid")

    code = next(c for c in fused if c.id == "code")
    expected = float(_direction(unit(1000), 6, 0.3) @ unit(1000))
    assert code.score == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
async def test_search_other_users_chunk_never_returned_in_any_mode(
    hybrid: HybridStore, mode: RetrievalMode
) -> None:
    # "secret" is the best match both ways, and user 1 asks for one chunk only.
    found = await _search(hybrid, mode, top_k=1)

    assert len(found) == 1
    assert found[0].id != "secret"


async def test_delete_documents_removes_chunks_from_both_searches(hybrid: HybridStore) -> None:
    await hybrid.delete_documents([6])

    modes: tuple[RetrievalMode, ...] = ("dense", "lexical", "hybrid")
    for mode in modes:
        assert "code" not in {c.id for c in await _search(hybrid, mode, top_k=10)}


async def test_search_store_without_text_search_queries_by_vector(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = LocalVectorStore(sessions)
    await store.upsert([record("a", 1, "alpha"), record("b", 2, "beta")])

    found = await search_store(
        store, "ignored words", unit(2), top_k=1, visibility=Visibility.of_user(1)
    )

    assert [c.id for c in found] == ["b"]
