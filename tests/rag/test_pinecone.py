"""PineconeVectorStore driving the real Pinecone SDK against the fake Pinecone on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from pinecone import RetryConfig
from pydantic import SecretStr

from app.core.config import Settings
from app.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.rag.backends.pinecone import PineconeVectorStore, ensure_index, visibility_filter
from app.rag.protocols import ChunkRecord, Visibility
from tests.fakes.pinecone import FakePinecone, Fault, disable_sdk_retry_backoff
from tests.fakes.server import serve

API_KEY = "pc-test-4f7d0c2a9b1e"
INDEX = "chatbot-index"
NAMESPACE = "test-ns"
DIM = 4


def unit(*values: float) -> np.ndarray[Any, np.dtype[np.float32]]:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def record(
    chunk_id: str,
    vector: np.ndarray[Any, np.dtype[np.float32]],
    *,
    owner_id: int | None = 1,
    document_id: int = 1,
) -> ChunkRecord:
    return ChunkRecord(
        id=chunk_id,
        document_id=document_id,
        owner_id=owner_id,
        title=f"Title {chunk_id}",
        text=f"Text of {chunk_id}",
        vector=vector,
    )


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pinecone_api_key": SecretStr(API_KEY),
        "pinecone_index": INDEX,
        "pinecone_host": url,
        "pinecone_controller_host": url,
        "pinecone_namespace": NAMESPACE,
        "pinecone_timeout_seconds": 5.0,
        "pinecone_cloud": "gcp",
        "pinecone_region": "europe-west4",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakePinecone, str]]:
    fake = FakePinecone(api_key=API_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def url(fake_server: tuple[FakePinecone, str]) -> str:
    return fake_server[1]


@pytest.fixture
def fake(fake_server: tuple[FakePinecone, str], monkeypatch: pytest.MonkeyPatch) -> FakePinecone:
    fake = fake_server[0]
    fake.reset()
    fake.add_index(INDEX, dimension=DIM)
    disable_sdk_retry_backoff(monkeypatch)
    return fake


@pytest.fixture
async def store(fake: FakePinecone, url: str) -> AsyncIterator[PineconeVectorStore]:
    store = await PineconeVectorStore.open(make_settings(url))
    yield store
    await store.aclose()


async def test_query_after_upsert_returns_closest_chunk_with_its_fields(
    store: PineconeVectorStore,
) -> None:
    await store.upsert(
        [
            record("a", unit(1, 0, 0, 0), document_id=11),
            record("b", unit(0, 1, 0, 0), document_id=12),
            record("c", unit(1, 1, 0, 0), document_id=13),
        ]
    )

    chunks = await store.query(unit(1, 0.1, 0, 0), top_k=2, visibility=Visibility.of_user(1))

    assert [c.id for c in chunks] == ["a", "c"]
    best = chunks[0]
    assert (best.document_id, best.title, best.text) == (11, "Title a", "Text of a")
    assert best.score == pytest.approx(0.995, abs=1e-3)
    assert chunks[0].score > chunks[1].score


async def test_upsert_private_and_shared_records_store_documented_metadata(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.upsert(
        [
            record("mine", unit(1, 0, 0, 0), owner_id=7, document_id=3),
            record("all", unit(0, 1, 0, 0), owner_id=None, document_id=4),
        ]
    )

    stored = fake.vectors(NAMESPACE)
    assert stored["mine"].metadata == {
        "document_id": 3,
        "owner_id": 7,
        "shared": False,
        "title": "Title mine",
        "text": "Text of mine",
    }
    assert stored["all"].metadata == {
        "document_id": 4,
        "shared": True,
        "title": "Title all",
        "text": "Text of all",
    }


async def test_query_other_users_private_chunks_are_never_returned(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.upsert(
        [
            record("alice", unit(1, 0, 0, 0), owner_id=1),
            record("bob", unit(1, 0.01, 0, 0), owner_id=2),
            record("shared", unit(0, 0, 1, 0), owner_id=None),
        ]
    )
    query = unit(1, 0, 0, 0)

    alice = await store.query(query, top_k=10, visibility=Visibility.of_user(1))
    bob = await store.query(query, top_k=10, visibility=Visibility.of_user(2))
    carol = await store.query(query, top_k=10, visibility=Visibility.of_user(3))

    assert [c.id for c in alice] == ["alice", "shared"]
    assert [c.id for c in bob] == ["bob", "shared"]
    assert [c.id for c in carol] == ["shared"]
    sent = fake.requests_to("/query")[0].body
    assert sent["filter"] == {"$or": [{"owner_id": {"$eq": 1}}, {"shared": {"$eq": True}}]}
    assert sent["filter"] == visibility_filter(Visibility.of_user(1))
    assert (sent["topK"], sent["includeMetadata"], sent["namespace"]) == (10, True, NAMESPACE)


async def test_upsert_250_records_sends_three_batches(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    rng = np.random.default_rng(0)
    records = [record(f"c{i}", unit(*rng.random(DIM))) for i in range(250)]

    await store.upsert(records)

    upserts = fake.requests_to("/vectors/upsert")
    assert [len(r.body["vectors"]) for r in upserts] == [100, 100, 50]
    assert {r.body["namespace"] for r in upserts} == {NAMESPACE}
    assert len(fake.vectors(NAMESPACE)) == 250


async def test_upsert_no_records_sends_no_request(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.upsert([])

    assert fake.requests_to("/vectors/upsert") == []


async def test_delete_removes_records_from_later_queries(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.upsert([record("a", unit(1, 0, 0, 0)), record("b", unit(1, 1, 0, 0))])

    await store.delete(["a", "unknown"])
    chunks = await store.query(unit(1, 0, 0, 0), top_k=5, visibility=Visibility.of_user(1))

    assert [c.id for c in chunks] == ["b"]
    assert fake.requests_to("/vectors/delete")[0].body == {
        "namespace": NAMESPACE,
        "ids": ["a", "unknown"],
    }


async def test_delete_2500_ids_sends_batches_of_at_most_1000(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.delete([f"c{i}" for i in range(2500)])

    deletes = fake.requests_to("/vectors/delete")
    assert [len(r.body["ids"]) for r in deletes] == [1000, 1000, 500]


async def test_delete_no_ids_sends_no_request(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.delete([])

    assert fake.requests_to("/vectors/delete") == []


async def test_open_without_host_resolves_it_via_describe_index(
    fake: FakePinecone, url: str
) -> None:
    store = await PineconeVectorStore.open(make_settings(url, pinecone_host=None))
    try:
        await store.upsert([record("a", unit(1, 0, 0, 0))])
    finally:
        await store.aclose()

    assert len(fake.requests_to(f"/indexes/{INDEX}", "GET")) == 1
    assert "a" in fake.vectors(NAMESPACE)


async def test_open_with_host_makes_no_control_plane_call(fake: FakePinecone, url: str) -> None:
    store = await PineconeVectorStore.open(make_settings(url))
    await store.aclose()

    assert [r for r in fake.requests if r.path.startswith("/indexes")] == []


async def test_open_missing_index_raises_error_naming_pinecone_init(
    fake: FakePinecone, url: str
) -> None:
    fake.reset()

    with pytest.raises(UpstreamError) as caught:
        await PineconeVectorStore.open(make_settings(url, pinecone_host=None))

    assert "chatbot pinecone-init" in caught.value.detail
    assert INDEX in caught.value.detail


async def test_open_unreachable_control_plane_raises_upstream_unavailable(
    fake: FakePinecone,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"

    with pytest.raises(UpstreamUnavailable):
        await PineconeVectorStore.open(
            make_settings(closed, pinecone_host=None), retry_config=RetryConfig(max_retries=0)
        )


async def test_ensure_index_missing_creates_it_once(fake: FakePinecone, url: str) -> None:
    fake.reset()
    settings = make_settings(url, pinecone_host=None)

    first = await ensure_index(settings, DIM)
    second = await ensure_index(settings, DIM)

    assert first == (url, True)
    assert second == (url, False)
    creates = fake.requests_to("/indexes", "POST")
    assert len(creates) == 1
    assert creates[0].body == {
        "name": INDEX,
        "schema": {
            "fields": {"_values": {"type": "dense_vector", "dimension": DIM, "metric": "cosine"}}
        },
        "deployment": {"deployment_type": "managed", "cloud": "gcp", "region": "europe-west4"},
    }


async def test_ensure_index_initialising_waits_until_ready(fake: FakePinecone, url: str) -> None:
    fake.reset()
    fake.ready_after_describes = 2

    host, created = await ensure_index(make_settings(url), DIM, poll_interval=0.01)

    assert (host, created) == (url, True)
    # describe (404), create, then describes until the third one reports Ready.
    assert len(fake.requests_to(f"/indexes/{INDEX}", "GET")) == 4


async def test_ensure_index_never_ready_raises_upstream_timeout(
    fake: FakePinecone, url: str
) -> None:
    fake.reset()
    fake.ready_after_describes = 10_000

    with pytest.raises(UpstreamTimeout):
        await ensure_index(make_settings(url), DIM, ready_timeout=0.05, poll_interval=0.01)


async def test_ensure_index_existing_with_other_dimension_raises_upstream_error(
    fake: FakePinecone, url: str
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await ensure_index(make_settings(url), DIM + 1)

    assert f"{DIM + 1} dimensions" in caught.value.detail
    assert fake.requests_to("/indexes", "POST") == []


async def test_query_wrong_api_key_raises_upstream_error_502(fake: FakePinecone, url: str) -> None:
    wrong = "pc-wrong-key-123456"
    store = await PineconeVectorStore.open(make_settings(url, pinecone_api_key=SecretStr(wrong)))
    try:
        with pytest.raises(UpstreamError) as caught:
            await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))
    finally:
        await store.aclose()

    assert type(caught.value) is UpstreamError
    assert caught.value.status_code == 502
    assert "401" in caught.value.detail
    assert wrong not in caught.value.detail


async def test_query_bad_request_raises_upstream_error_502(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.upsert([record("a", unit(1, 0, 0, 0))])

    with pytest.raises(UpstreamError) as caught:
        await store.query(
            unit(1, 0, 0), top_k=3, visibility=Visibility.of_user(1)
        )  # the index holds 4 dimensions

    assert type(caught.value) is UpstreamError
    assert "400" in caught.value.detail


@pytest.mark.parametrize("status", [500, 503])
async def test_query_server_error_raises_upstream_unavailable_after_sdk_retries(
    store: PineconeVectorStore, fake: FakePinecone, status: int
) -> None:
    fake.inject(Fault(status=status, path="/query"), times=None)

    with pytest.raises(UpstreamUnavailable) as caught:
        await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert caught.value.status_code == 503
    assert len(fake.requests_to("/query")) == 4  # the SDK's first attempt and 3 retries


async def test_query_rate_limited_raises_upstream_unavailable_with_retry_after(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    fake.inject(Fault(status=429, path="/query", headers={"Retry-After": "7"}), times=None)

    with pytest.raises(UpstreamUnavailable) as caught:
        await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert caught.value.retry_after == 7
    assert caught.value.headers == {"Retry-After": "7"}


async def test_query_one_transient_503_is_retried_by_sdk_and_succeeds(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    await store.upsert([record("a", unit(1, 0, 0, 0))])
    fake.inject(Fault(status=503, path="/query"), times=1)

    chunks = await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert [c.id for c in chunks] == ["a"]
    assert len(fake.requests_to("/query")) == 2


async def test_upsert_server_error_raises_upstream_unavailable(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    fake.inject(Fault(status=503, path="/vectors/upsert"), times=None)

    with pytest.raises(UpstreamUnavailable):
        await store.upsert([record("a", unit(1, 0, 0, 0))])


async def test_query_slow_answer_raises_upstream_timeout(fake: FakePinecone, url: str) -> None:
    store = await PineconeVectorStore.open(make_settings(url, pinecone_timeout_seconds=0.2))
    fake.inject(Fault(status=None, delay=5.0, path="/query"), times=None)
    try:
        with pytest.raises(UpstreamTimeout) as caught:
            await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))
    finally:
        await store.aclose()

    assert caught.value.status_code == 504


async def test_query_malformed_json_raises_upstream_error(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    fake.inject(Fault(status=200, body=b'{"matches": [{"id": "a", "sco', path="/query"))

    with pytest.raises(UpstreamError) as caught:
        await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert type(caught.value) is UpstreamError


async def test_query_match_without_metadata_raises_upstream_error(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    body = json.dumps({"matches": [{"id": "a", "score": 0.9}], "namespace": NAMESPACE})
    fake.inject(Fault(status=200, body=body.encode(), path="/query"))

    with pytest.raises(UpstreamError) as caught:
        await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert type(caught.value) is UpstreamError
    assert "'a'" in caught.value.detail


async def test_query_float_document_id_from_pinecone_is_read_as_int(
    store: PineconeVectorStore, fake: FakePinecone
) -> None:
    metadata = {"document_id": 42.0, "shared": True, "title": "T", "text": "X"}
    body = json.dumps({"matches": [{"id": "a", "score": 0.5, "metadata": metadata}]})
    fake.inject(Fault(status=200, body=body.encode(), path="/query"))

    chunks = await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert chunks[0].document_id == 42
    assert isinstance(chunks[0].document_id, int)


async def test_error_echoing_api_key_keeps_it_out_of_detail_and_logs(
    store: PineconeVectorStore, fake: FakePinecone, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"code": 3, "message": f"bad key {API_KEY}", "details": []})
    fake.inject(Fault(status=400, body=body.encode(), path="/query"))

    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError) as caught:
        await store.query(unit(1, 0, 0, 0), top_k=3, visibility=Visibility.of_user(1))

    assert API_KEY not in caught.value.detail
    assert "bad key ***" in caplog.text
    assert API_KEY not in caplog.text
