"""The isolation rule as a property: random users, collections, memberships, roles and
documents, random membership changes between questions; for every question, the sources
returned are exactly the documents the caller may see at that moment (never one more),
through the local store and through Pinecone (the real SDK against the wire fake), in dense,
lexical and hybrid retrieval.

Every document's one chunk holds the question's word and sits near the question's vector,
and `top_k` exceeds the number of documents, so each mode returns every document the rule
admits: the check is an equality, which fails both on a leak and on a lost document.

The caller's access goes through the production path each time: the membership rows in the
database, `load_access` (one query per request) and `CollectionAccess.visibility`; the
expected set comes from the test's own model of the memberships.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.auth.principal import Principal
from app.collections.access import CollectionNotFound, load_access
from app.collections.models import Collection, CollectionMember, CollectionRole
from app.core.config import Settings
from app.core.db import utcnow
from app.documents.live import LiveDocumentsStore
from app.documents.models import Document, DocumentStatus
from app.rag.backends.local import LocalVectorStore, VectorEntry
from app.rag.backends.pinecone import PineconeVectorStore
from app.rag.hybrid import FusionConfig, HybridStore, RetrievalMode, StoredVectorScorer
from app.rag.lexical import LexicalChunk, LexicalIndex
from app.rag.protocols import ChunkRecord, VectorStore
from tests.fakes.pinecone import FakePinecone, disable_sdk_retry_backoff
from tests.fakes.server import serve

USERS = (1, 2, 3, 4)
COLLECTIONS = (1, 2, 3)
DIMENSION = 8
API_KEY = "pc-test-isolation"
INDEX = "isolation"
QUESTION = "zebra"
Backend = Literal["local", "pinecone"]

# A document: private to a user, in a collection (uploaded by a user), or shared.
document_kinds = st.one_of(
    st.tuples(st.just("private"), st.sampled_from(USERS)),
    st.tuples(st.just("collection"), st.sampled_from(COLLECTIONS), st.sampled_from(USERS)),
    st.tuples(st.just("shared")),
)
memberships = st.dictionaries(
    st.tuples(st.sampled_from(USERS), st.sampled_from(COLLECTIONS)),
    st.sampled_from(list(CollectionRole)),
    max_size=8,
)
collection_sets = st.frozensets(st.sampled_from(COLLECTIONS), min_size=1)
# Between questions: a user joins or leaves a collection, or changes role.
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("join"),
            st.sampled_from(USERS),
            st.sampled_from(COLLECTIONS),
            st.sampled_from(list(CollectionRole)),
        ),
        st.tuples(st.just("leave"), st.sampled_from(USERS), st.sampled_from(COLLECTIONS)),
        # A question by a user: narrowed to some collections or not, through a key limited
        # to some collections or not.
        st.tuples(
            st.just("ask"),
            st.sampled_from(USERS),
            st.none() | collection_sets,
            st.none() | collection_sets,
        ),
    ),
    min_size=1,
    max_size=12,
)


@dataclass
class Model:
    """The test's own account of who belongs where, and of each document's kind."""

    members: dict[tuple[int, int], CollectionRole]
    documents: dict[int, tuple[Any, ...]] = field(default_factory=dict)

    def collections_of(self, user: int) -> set[int]:
        return {c for (u, c) in self.members if u == user}

    def expected(
        self, user: int, requested: frozenset[int] | None, scope: frozenset[int] | None
    ) -> set[int] | None:
        """The documents the caller may retrieve; None when the request must be refused."""
        reachable = self.collections_of(user) & (scope if scope is not None else set(COLLECTIONS))
        if requested is not None:
            if not requested <= reachable:
                return None
            reachable = set(requested)
        everything = requested is None and scope is None

        def visible(kind: tuple[Any, ...]) -> bool:
            if kind[0] == "collection":
                return bool(kind[1] in reachable)
            if kind[0] == "private":
                return everything and kind[1] == user
            return everything  # shared

        return {doc_id for doc_id, kind in self.documents.items() if visible(kind)}


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


QUERY = unit(10_000)


def _near(seed: int) -> np.ndarray:
    vector = 0.8 * QUERY + 0.2 * unit(seed)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakePinecone, str]]:
    fake = FakePinecone(api_key=API_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
async def pinecone_settings(
    fake_server: tuple[FakePinecone, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[FakePinecone, Settings]:
    fake, url = fake_server
    disable_sdk_retry_backoff(monkeypatch)
    return (
        fake,
        Settings(
            _env_file=None,
            pinecone_api_key=SecretStr(API_KEY),
            pinecone_index=INDEX,
            pinecone_host=url,
            pinecone_controller_host=url,
        ),
    )


async def _reset(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        for model in (VectorEntry, LexicalChunk, Document, CollectionMember, Collection, User):
            await session.execute(delete(model))
        now = utcnow()
        session.add_all(
            User(
                id=u,
                email=f"u{u}@example.com",
                username=f"u{u}",
                password_hash="x",
                created_at=now,
            )
            for u in USERS
        )
        await session.flush()
        session.add_all(
            Collection(id=c, name=f"c{c}", created_at=now, updated_at=now) for c in COLLECTIONS
        )


async def _fill(
    sessions: async_sessionmaker[AsyncSession],
    store: HybridStore,
    model: Model,
    kinds: list[tuple[Any, ...]],
) -> None:
    now = utcnow()
    records = []
    async with sessions.begin() as session:
        for (user, collection), role in model.members.items():
            session.add(CollectionMember(collection_id=collection, user_id=user, role=role))
        for doc_id, kind in enumerate(kinds, start=1):
            private = kind[0] == "private"
            in_collection = kind[0] == "collection"
            document = Document(
                id=doc_id,
                owner_id=kind[1] if private else kind[2] if in_collection else None,
                shared=kind[0] == "shared",
                collection_id=kind[1] if in_collection else None,
                title=f"doc {doc_id}",
                content_type="text/plain",
                content=f"zebra {doc_id}",
                content_hash=f"{doc_id:064d}",
                status=DocumentStatus.READY,
                chunks=1,
                created_at=now,
                updated_at=now,
            )
            session.add(document)
            model.documents[doc_id] = kind
            records.append(
                ChunkRecord(
                    id=f"doc{doc_id}-0",
                    document_id=doc_id,
                    owner_id=document.private_owner,
                    collection_id=document.collection_id,
                    title=document.title,
                    text=f"The zebra note number {doc_id}.",
                    vector=_near(doc_id),
                )
            )
    await store.upsert(records)


async def _change(
    sessions: async_sessionmaker[AsyncSession], model: Model, step: tuple[Any, ...]
) -> None:
    kind, user, collection = step[0], step[1], step[2]
    async with sessions.begin() as session:
        await session.execute(
            delete(CollectionMember).where(
                CollectionMember.user_id == user, CollectionMember.collection_id == collection
            )
        )
        model.members.pop((user, collection), None)
        if kind == "join":
            session.add(CollectionMember(collection_id=collection, user_id=user, role=step[3]))
            model.members[(user, collection)] = step[3]


async def _dense(
    backend: Backend,
    sessions: async_sessionmaker[AsyncSession],
    pinecone: tuple[FakePinecone, Settings],
) -> VectorStore:
    if backend == "local":
        return LocalVectorStore(sessions)
    fake, config = pinecone
    fake.reset()
    fake.add_index(INDEX, dimension=DIMENSION)
    return LiveDocumentsStore(await PineconeVectorStore.open(config), sessions)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
@pytest.mark.parametrize("backend", ["local", "pinecone"])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(kinds=st.lists(document_kinds, min_size=1, max_size=10), initial=memberships, plan=steps)
async def test_search_every_source_is_visible_to_the_caller_at_that_moment(
    sessions: async_sessionmaker[AsyncSession],
    pinecone_settings: tuple[FakePinecone, Settings],
    backend: Backend,
    mode: RetrievalMode,
    kinds: list[tuple[Any, ...]],
    initial: dict[tuple[int, int], CollectionRole],
    plan: list[tuple[Any, ...]],
) -> None:
    await _reset(sessions)
    dense = await _dense(backend, sessions, pinecone_settings)
    scorer = StoredVectorScorer(sessions) if backend == "local" else None
    store = HybridStore(
        dense, LexicalIndex(sessions), FusionConfig(mode=mode, candidates=20), scorer=scorer
    )
    model = Model(dict(initial))
    try:
        await _fill(sessions, store, model, kinds)
        for step in plan:
            if step[0] != "ask":
                await _change(sessions, model, step)
                continue
            _, user, requested, scope = step
            principal = Principal(
                user=User(id=user), key_id=None if scope is None else 1, collection_ids=scope
            )
            expected = model.expected(user, requested, scope)
            access = await load_access(sessions, principal)
            if expected is None:
                with pytest.raises(CollectionNotFound):
                    access.visibility(requested)
                continue
            found = await store.search(
                QUESTION, QUERY, top_k=20, visibility=access.visibility(requested)
            )
            assert {chunk.document_id for chunk in found} == expected
    finally:
        await store.aclose()
