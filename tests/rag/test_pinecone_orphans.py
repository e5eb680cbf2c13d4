"""The orphan sweep (issue 22): vectors a crash left in Pinecone whose document no longer
exists are removed in the background, page by page, through the real Pinecone SDK against the
wire fake on 127.0.0.1; live documents' vectors are never touched, and no database connection
is held while Pinecone is called."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.documents.models import Document, DocumentStatus, chunk_id
from app.documents.orphans import OrphanSweep, VectorListing
from app.rag.backends.pinecone import PineconeVectorStore
from app.rag.protocols import ChunkRecord
from tests.conftest import add_placeholder_documents, new_user
from tests.fakes.pinecone import FakePinecone, RecordedRequest, StoredVector
from tests.fakes.pinecone import disable_sdk_retry_backoff as _no_backoff
from tests.fakes.server import serve
from tests.rag.test_remote_api import (  # noqa: F401 - fixtures
    hf,
    hf_server,
    pinecone,
    pinecone_server,
    remote,
)

API_KEY = "pc-test-orphans"
INDEX = "orphans-index"
NAMESPACE = "orphans-ns"
DIM = 4
# document id -> chunks; 1 and 2 are live, 3 is being deleted, 40 and 41 are gone.
LIVE = {1: 4, 2: 3, 3: 2}
GONE = {40: 12, 41: 9}
PAGE = 7


def _removed_total() -> float:
    return REGISTRY.get_sample_value("orphan_vectors_removed_total") or 0.0


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakePinecone, str]]:
    fake = FakePinecone(api_key=API_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
async def store(
    fake_server: tuple[FakePinecone, str],
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[PineconeVectorStore]:
    fake, url = fake_server
    fake.reset()
    fake.on_request = None
    fake.add_index(INDEX, dimension=DIM)
    _no_backoff(monkeypatch)
    settings = Settings(
        _env_file=None,
        pinecone_api_key=SecretStr(API_KEY),
        pinecone_index=INDEX,
        pinecone_host=url,
        pinecone_controller_host=url,
        pinecone_namespace=NAMESPACE,
    )
    store = await PineconeVectorStore.open(settings)
    await add_placeholder_documents(sessions, LIVE)
    async with sessions.begin() as session:
        await session.execute(
            update(Document).where(Document.id == 3).values(status=DocumentStatus.DELETING)
        )
    vector = np.full(DIM, 0.5, dtype=np.float32)
    await store.upsert(
        [
            ChunkRecord(chunk_id(d, n), d, None, f"doc {d}", f"chunk {n}", vector)
            for d, chunks in {**LIVE, **GONE}.items()
            for n in range(chunks)
        ]
    )
    fake.requests.clear()
    yield store
    fake.on_request = None
    await store.aclose()


def _sweep(
    sessions: async_sessionmaker[AsyncSession], store: VectorListing, **overrides: Any
) -> OrphanSweep:
    options: dict[str, Any] = {"page_size": PAGE, "max_pages": 100, "interval_seconds": 60}
    options.update(overrides)
    return OrphanSweep(sessions, store, **options)


def _live_ids() -> set[str]:
    return {chunk_id(d, n) for d, chunks in LIVE.items() for n in range(chunks)}


async def test_sweep_orphans_removes_vectors_of_missing_documents_only(
    store: PineconeVectorStore,
    sessions: async_sessionmaker[AsyncSession],
    fake_server: tuple[FakePinecone, str],
) -> None:
    fake = fake_server[0]
    before = _removed_total()

    removed = await _sweep(sessions, store).run()

    assert removed == sum(GONE.values())
    # Live documents, and the one still `deleting` (left to its purge), keep every vector.
    assert set(fake.vectors(NAMESPACE)) == _live_ids()
    assert _removed_total() == before + sum(GONE.values())


async def test_sweep_orphans_lists_in_bounded_pages(
    store: PineconeVectorStore,
    sessions: async_sessionmaker[AsyncSession],
    fake_server: tuple[FakePinecone, str],
) -> None:
    fake = fake_server[0]
    total = sum(LIVE.values()) + sum(GONE.values())

    await _sweep(sessions, store).run()

    lists = fake.requests_to("/vectors/list", "GET")
    assert len(lists) == -(-total // PAGE)  # every page once, none twice
    assert all(r.query["limit"] == [str(PAGE)] for r in lists)
    assert all(r.query["namespace"] == [NAMESPACE] for r in lists)
    fetches = fake.requests_to("/vectors/fetch", "GET")
    assert fetches
    assert all(len(r.query["ids"]) <= PAGE for r in fetches)
    deletes = fake.requests_to("/vectors/delete", "POST")
    assert all(len(r.body["ids"]) <= PAGE for r in deletes)


async def test_sweep_orphans_run_stops_after_max_pages_and_next_run_resumes(
    store: PineconeVectorStore,
    sessions: async_sessionmaker[AsyncSession],
    fake_server: tuple[FakePinecone, str],
) -> None:
    fake = fake_server[0]
    sweep = _sweep(sessions, store, max_pages=2)

    first = await sweep.run()
    assert len(fake.requests_to("/vectors/list")) == 2
    assert len(fake.vectors(NAMESPACE)) > len(_live_ids())  # not everything yet
    second = await sweep.run()
    third = await sweep.run()

    lists = fake.requests_to("/vectors/list")
    assert "paginationToken" not in lists[0].query
    assert "paginationToken" in lists[2].query  # the second run went on, not back
    assert first + second + third == sum(GONE.values())
    assert set(fake.vectors(NAMESPACE)) == _live_ids()


async def test_sweep_orphans_holds_no_database_connection_while_pinecone_is_called(
    store: PineconeVectorStore,
    sessions: async_sessionmaker[AsyncSession],
    fake_server: tuple[FakePinecone, str],
) -> None:
    fake = fake_server[0]
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    checked_out = 0
    lookups = 0

    def checkout(*_: Any) -> None:
        nonlocal checked_out, lookups
        checked_out += 1
        lookups += 1

    def checkin(*_: Any) -> None:
        nonlocal checked_out
        checked_out -= 1

    seen: list[tuple[str, int]] = []

    def on_request(request: RecordedRequest) -> None:
        seen.append((request.path, checked_out))

    event.listen(engine.sync_engine, "checkout", checkout)
    event.listen(engine.sync_engine, "checkin", checkin)
    fake.on_request = on_request
    try:
        await _sweep(sessions, store).run()
    finally:
        event.remove(engine.sync_engine, "checkout", checkout)
        event.remove(engine.sync_engine, "checkin", checkin)

    assert {path for path, _ in seen} == {"/vectors/list", "/vectors/fetch", "/vectors/delete"}
    assert [count for _, count in seen] == [0] * len(seen)
    assert lookups >= len(fake.requests_to("/vectors/list"))  # the database was asked


async def test_sweep_orphans_vectors_without_a_document_id_are_kept(
    store: PineconeVectorStore,
    sessions: async_sessionmaker[AsyncSession],
    fake_server: tuple[FakePinecone, str],
) -> None:
    fake = fake_server[0]
    fake.seed(
        NAMESPACE,
        [
            StoredVector("foreign-1", [0.5] * DIM, {}),
            StoredVector("foreign-2", [0.5] * DIM, {"document_id": "40"}),
        ],
    )

    await _sweep(sessions, store).run()

    assert set(fake.vectors(NAMESPACE)) == _live_ids() | {"foreign-1", "foreign-2"}


async def test_orphan_sweep_runs_in_the_background_of_the_app(
    remote: Any,  # noqa: F811
    pinecone: FakePinecone,  # noqa: F811
) -> None:
    before = _removed_total()
    async with remote(orphan_sweep_seconds=0.2) as (client, state):
        headers = await new_user(client)
        kept = await client.post(
            "/api/documents/",
            json={"title": "Harbour", "content": "Tallinn has a harbour."},
            headers=headers,
        )
        gone = await client.post(
            "/api/documents/",
            json={"title": "Vault", "content": "The vault code is 7731."},
            headers=headers,
        )
        assert kept.status_code == gone.status_code == 201
        gone_id = gone.json()["id"]
        # As a crash between the row's deletion and the vectors' would leave them.
        async with state["sessions"].begin() as session:
            await session.execute(text("DELETE FROM documents WHERE id = :id"), {"id": gone_id})
        assert len(pinecone.vectors()) == 2

        for _ in range(200):  # a bound against a hang, not a timing
            if len(pinecone.vectors()) == 1:
                break
            await asyncio.sleep(0.05)

        remaining = {v.metadata["document_id"] for v in pinecone.vectors().values()}
    assert remaining == {kept.json()["id"]}
    assert _removed_total() == before + 1
