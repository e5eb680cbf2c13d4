"""The hybrid store over Pinecone (the real SDK against the wire fake on 127.0.0.1): dense
results from Pinecone, lexical ones from our database, fused; visibility in both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.documents.live import LiveDocumentsStore
from app.rag.backends.pinecone import PineconeVectorStore
from app.rag.hybrid import FusionConfig, HybridStore
from app.rag.lexical import LexicalIndex
from app.rag.protocols import Visibility
from tests.fakes.pinecone import FakePinecone, disable_sdk_retry_backoff
from tests.fakes.server import serve
from tests.retrieval.conftest import record, unit

API_KEY = "pc-test-hybrid"
INDEX = "hybrid-index"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakePinecone, str]]:
    fake = FakePinecone(api_key=API_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
async def hybrid(
    fake_server: tuple[FakePinecone, str],
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[HybridStore]:
    fake, url = fake_server
    fake.reset()
    fake.add_index(INDEX, dimension=8)
    disable_sdk_retry_backoff(monkeypatch)
    settings = Settings(
        _env_file=None,
        pinecone_api_key=SecretStr(API_KEY),
        pinecone_index=INDEX,
        pinecone_host=url,
        pinecone_controller_host=url,
    )
    dense = LiveDocumentsStore(await PineconeVectorStore.open(settings), sessions)
    store = HybridStore(dense, LexicalIndex(sessions), FusionConfig(candidates=3))
    query = unit(1000)
    near = [
        record(f"near{n}", n, f"A general remark number {n}.", vector=_towards(query, n, 0.9))
        for n in range(1, 6)
    ]
    code = record("code", 6, "Error E1042: quota exhausted.", vector=_towards(query, 6, 0.3))
    secret = record("secret", 7, "E1042 E1042 quota.", owner=2, vector=_towards(query, 7, 0.95))
    await store.upsert([*near, code, secret])
    yield store
    await store.aclose()


def _towards(base: np.ndarray, seed: int, closeness: float) -> np.ndarray:
    vector = closeness * base + (1 - closeness) * unit(seed)
    return vector / np.linalg.norm(vector)


async def test_search_pinecone_dense_fused_with_our_lexical_hit(hybrid: HybridStore) -> None:
    found = await hybrid.search(
        "error E1042", unit(1000), top_k=3, visibility=Visibility.of_user(1)
    )

    ids = [c.id for c in found]
    assert "code" in ids
    assert ids[0].startswith("near")
    # No stored vector to score it: the last dense candidate's cosine bounds it.
    dense = await hybrid.dense.query(unit(1000), top_k=3, visibility=Visibility.of_user(1))
    assert next(c for c in found if c.id == "code").score == pytest.approx(dense[-1].score)


async def test_search_pinecone_other_users_chunk_never_returned(hybrid: HybridStore) -> None:
    found = await hybrid.search(
        "E1042 quota", unit(1000), top_k=10, visibility=Visibility.of_user(1)
    )

    assert "secret" not in {c.id for c in found}
    assert "secret" in {
        c.id
        for c in await hybrid.search(
            "E1042 quota", unit(1000), top_k=10, visibility=Visibility.of_user(2)
        )
    }


async def test_delete_documents_pinecone_and_lexical_both_forget(hybrid: HybridStore) -> None:
    await hybrid.delete_documents([6])

    found = await hybrid.search(
        "error E1042", unit(1000), top_k=10, visibility=Visibility.of_user(1)
    )

    assert "code" not in {c.id for c in found}
