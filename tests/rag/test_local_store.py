from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.rag.backends.local import LocalVectorStore
from app.rag.backends.local import store as local_store
from app.rag.protocols import ChunkRecord, Visibility
from tests.conftest import add_placeholder_documents


@pytest.fixture(autouse=True)
async def documents(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_placeholder_documents(sessions, range(100))


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _record(n: int, owner: int | None, vector: np.ndarray | None = None) -> ChunkRecord:
    return ChunkRecord(
        id=f"c{n}",
        document_id=n,
        owner_id=owner,
        title=f"doc {n}",
        text=f"text {n}",
        vector=_unit(n) if vector is None else vector,
    )


async def test_query_returns_closest_first_with_scores(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = LocalVectorStore(sessions)
    await store.upsert([_record(n, owner=1) for n in range(20)])
    hits = await store.query(_unit(7), top_k=3, visibility=Visibility.of_user(1))
    assert hits[0].id == "c7"
    assert abs(hits[0].score - 1.0) < 1e-5
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) == 3


async def test_query_sees_only_own_and_shared(sessions: async_sessionmaker[AsyncSession]) -> None:
    store = LocalVectorStore(sessions)
    await store.upsert([_record(1, owner=1), _record(2, owner=2), _record(3, owner=None)])
    visible = {
        h.id for h in await store.query(_unit(2), top_k=10, visibility=Visibility.of_user(1))
    }
    assert visible == {"c1", "c3"}


async def test_write_in_one_process_is_seen_by_another(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    worker_a, worker_b = LocalVectorStore(sessions), LocalVectorStore(sessions)
    assert await worker_b.query(_unit(1), top_k=1, visibility=Visibility.of_user(1)) == []
    await worker_a.upsert([_record(1, owner=1)])
    assert [
        h.id for h in await worker_b.query(_unit(1), top_k=1, visibility=Visibility.of_user(1))
    ] == ["c1"]
    await worker_a.upsert([_record(2, owner=1)])  # incremental load of the new row only
    assert [
        h.id for h in await worker_b.query(_unit(2), top_k=1, visibility=Visibility.of_user(1))
    ] == ["c2"]
    await worker_a.delete(["c2"])  # a deletion forces a full reload
    assert [
        h.id for h in await worker_b.query(_unit(2), top_k=5, visibility=Visibility.of_user(1))
    ] == ["c1"]


async def test_upsert_same_id_replaces_vector(sessions: async_sessionmaker[AsyncSession]) -> None:
    store = LocalVectorStore(sessions)
    await store.upsert([_record(1, owner=1)])
    await store.upsert([_record(1, owner=1, vector=_unit(99))])
    hits = await store.query(_unit(99), top_k=5, visibility=Visibility.of_user(1))
    assert [h.id for h in hits] == ["c1"]
    assert abs(hits[0].score - 1.0) < 1e-5
    assert await store.count() == 1


async def test_store_survives_restart(sessions: async_sessionmaker[AsyncSession]) -> None:
    await LocalVectorStore(sessions).upsert([_record(n, owner=None) for n in range(5)])
    restarted = LocalVectorStore(sessions)
    assert (await restarted.query(_unit(4), top_k=1, visibility=Visibility.of_user(42)))[
        0
    ].id == "c4"


async def test_delete_unknown_and_empty_inputs_are_noops(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = LocalVectorStore(sessions)
    await store.upsert([])
    await store.delete([])
    await store.delete(["missing"])
    assert await store.query(_unit(1), top_k=3, visibility=Visibility.of_user(1)) == []


async def test_upsert_new_ids_loads_incrementally_without_full_reload(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer, reader = LocalVectorStore(sessions), LocalVectorStore(sessions)
    await writer.upsert([_record(1, owner=1)])
    await reader.query(_unit(1), top_k=1, visibility=Visibility.of_user(1))
    await writer.upsert([_record(2, owner=1), _record(3, owner=2)])
    await reader.query(_unit(2), top_k=1, visibility=Visibility.of_user(1))
    index = reader._index
    assert index.deletions == 0  # nothing was replaced, so no reader reloaded everything
    assert {owner: len(block.seqs) for owner, block in index.blocks.items()} == {1: 2, 2: 1}
    await writer.upsert([_record(2, owner=1, vector=_unit(50))])  # replaces a row
    await reader.query(_unit(50), top_k=1, visibility=Visibility.of_user(1))
    assert reader._index.deletions == 1
    assert len(reader._index.blocks[1].seqs) == 2


async def test_load_in_pages_sees_every_row(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_store, "LOAD_PAGE_ROWS", 4)
    await LocalVectorStore(sessions).upsert([_record(n, owner=n % 3 or None) for n in range(23)])
    reader = LocalVectorStore(sessions)
    for n in range(23):
        user = n % 3 or 1
        assert (await reader.query(_unit(n), top_k=1, visibility=Visibility.of_user(user)))[
            0
        ].id == f"c{n}"
    assert sum(len(block.seqs) for block in reader._index.blocks.values()) == 23
