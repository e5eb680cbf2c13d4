"""Nothing of a user outlives them; nothing is inherited. Each test reproduces a breach found
against the previous version (issue 6 §1), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from app.api.state import State
from app.auth.models import RefreshToken, User
from app.chat.models import ChatMessage
from app.documents.models import Document, DocumentStatus
from app.documents.repository import DocumentRepository
from app.rag.backends.local import VectorEntry
from app.rag.protocols import ChunkRecord, Visibility
from tests.conftest import AppFactory, make_admin, new_user, signup
from tests.fakes.pinecone import FakePinecone

SECRET = "The vault under the Quillon observatory opens with the code ORCHID-7731."
QUESTION = "What code opens the vault under the Quillon observatory?"
PASSWORD = "correct horse 1"


async def _count(state: State, model: Any, *where: Any) -> int:
    async with state["sessions"]() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)
        return int((await session.execute(query)).scalar_one())


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> int:
    response = await client.post("/api/documents/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _delete_me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.request("DELETE", "/api/me/", json={"password": PASSWORD}, headers=headers)


async def test_deleted_user_id_is_never_given_to_the_next_signup(
    client: httpx.AsyncClient, state: State
) -> None:
    await signup(client, "first@example.com")
    victim = await new_user(client, "victim@example.com")
    await _upload(client, victim, title="Vault", content=SECRET)
    victim_id = (await client.get("/api/me/", headers=victim)).json()["id"]
    # The deletion the models intend (a cascade), done behind the API's back.
    async with state["sessions"].begin() as session:
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": victim_id})

    newcomer = await new_user(client, "newcomer@example.com")

    me = (await client.get("/api/me/", headers=newcomer)).json()
    assert me["id"] > victim_id
    # The deleted user's old token names an id nobody has.
    assert (await client.get("/api/me/", headers=victim)).status_code == 401
    answer = (await client.post("/api/chat/", json={"message": QUESTION}, headers=newcomer)).json()
    assert "ORCHID" not in answer["response"]
    assert answer["sources"] == []
    # The cascade reached the vectors too (a foreign key on vector_entries.document_id).
    assert await _count(state, VectorEntry) == 0


async def test_token_signed_before_the_account_existed_is_401(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    codec = state["tokens"]
    user_id = (await client.get("/api/me/", headers=headers)).json()["id"]
    # As if the account had been created after the token: an id that matched by chance.
    async with state["sessions"].begin() as session:
        user = await session.get(User, user_id)
        assert user is not None
        user.created_at = user.created_at.replace(year=user.created_at.year + 1)
    token, _ = codec.create(str(user_id), "access", state["settings"].access_token_lifetime)
    response = await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_delete_me_removes_everything_and_tokens_stop(
    client: httpx.AsyncClient, state: State
) -> None:
    other = await new_user(client, "other@example.com")
    await signup(client)
    login = (
        await client.post("/api/login/", json={"email": "ada@example.com", "password": PASSWORD})
    ).json()
    headers = {"Authorization": f"Bearer {login['access']}"}
    await _upload(client, headers, title="Vault", content=SECRET)
    assert (
        await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
    ).status_code == 200
    user_id = (await client.get("/api/me/", headers=headers)).json()["id"]

    response = await _delete_me(client, headers)

    assert response.status_code == 204
    assert (await client.get("/api/me/", headers=headers)).status_code == 401
    refreshed = await client.post("/api/token/refresh/", json={"refresh": login["refresh"]})
    assert refreshed.status_code == 401
    for model, column in (
        (User, User.id),
        (ChatMessage, ChatMessage.user_id),
        (Document, Document.owner_id),
        (RefreshToken, RefreshToken.user_id),
    ):
        assert await _count(state, model, column == user_id) == 0, model
    assert await _count(state, VectorEntry) == 0
    answer = (await client.post("/api/chat/", json={"message": QUESTION}, headers=other)).json()
    assert "ORCHID" not in answer["response"]


async def test_delete_me_wrong_password_is_401_and_keeps_the_account(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    response = await client.request(
        "DELETE", "/api/me/", json={"password": "not my password"}, headers=headers
    )
    assert response.status_code == 401
    assert (await client.get("/api/me/", headers=headers)).status_code == 200


async def test_delete_me_admin_keeps_shared_documents(
    client: httpx.AsyncClient, state: State
) -> None:
    reader = await new_user(client, "reader@example.com")
    admin = await new_user(client)
    await make_admin(state, "ada@example.com")
    shared_id = await _upload(client, admin, title="Handbook", content=SECRET, shared=True)

    assert (await _delete_me(client, admin)).status_code == 204

    async with state["sessions"]() as session:
        shared = await session.get(Document, shared_id)
    assert shared is not None
    assert shared.owner_id is None
    answer = (await client.post("/api/chat/", json={"message": QUESTION}, headers=reader)).json()
    assert answer["sources"][0]["document_id"] == shared_id


async def test_delete_me_on_pinecone_deletes_the_users_vectors(
    remote: Any, pinecone: FakePinecone
) -> None:
    async with remote() as (client, _):
        keeper = await new_user(client, "keeper@example.com")
        await _upload(client, keeper, title="Other", content="Tallinn has a harbour.")
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Vault", content=SECRET)
        assert {v.metadata["document_id"] for v in pinecone.vectors().values()} == {
            doc_id - 1,
            doc_id,
        }

        assert (await _delete_me(client, headers)).status_code == 204

        assert {v.metadata["document_id"] for v in pinecone.vectors().values()} == {doc_id - 1}


async def test_pinecone_vectors_of_a_deleted_document_are_never_returned(
    remote: Any, pinecone: FakePinecone
) -> None:
    """A crash between the row's deletion and the vectors' leaves orphans in Pinecone: the
    query drops every match whose document is gone."""
    async with remote() as (client, state):
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Vault", content=SECRET)
        async with state["sessions"].begin() as session:
            await session.execute(text("DELETE FROM documents WHERE id = :id"), {"id": doc_id})
        assert len(pinecone.vectors()) == 1  # the orphan is still in the index

        vector = (await state["embedder"].embed([QUESTION]))[0]
        hits = await state["store"].query(vector, top_k=5, visibility=Visibility.of_user(1))

        assert hits == []


async def test_delete_during_background_ingestion_stops_within_one_batch(
    app_factory: AppFactory,
) -> None:
    """Reproduced: the delete answered 204 while vectors kept arriving (0 -> 640 rows)."""
    big = " ".join(f"Fact number {n} about the harbour of Tallinn is recorded." for n in range(600))
    async with app_factory(ingest_inline_max_chunks=0, chunk_tokens=32, chunk_overlap_tokens=0) as (
        client,
        state,
    ):
        headers = await new_user(client)
        embed = state["embedder"].embed
        batches = 0
        second_batch, deleted = asyncio.Event(), asyncio.Event()

        async def counting_embed(texts: Any, **kwargs: Any) -> Any:
            nonlocal batches
            batches += 1
            if batches == 2:  # the delete lands while ingestion is under way
                second_batch.set()
                await deleted.wait()
            return await embed(texts, **kwargs)

        state["documents"].embedder.embed = counting_embed  # type: ignore[method-assign]
        created = (
            await client.post(
                "/api/documents/", json={"title": "Big", "content": big}, headers=headers
            )
        ).json()
        assert created["status"] == "processing"
        assert created["chunks"] > 4 * 64
        await second_batch.wait()

        assert (
            await client.delete(f"/api/documents/{created['id']}/", headers=headers)
        ).status_code == 204
        deleted.set()
        await state["documents"].wait_idle()

        assert batches <= 3
        assert await _count(state, VectorEntry) == 0
        assert await _count(state, Document) == 0


async def test_restart_finishes_an_interrupted_deletion(
    app_factory: AppFactory,
) -> None:
    """Reproduced: after a kill -9 mid-deletion, 832 orphans remained and chat cited the
    deleted document. Here the crash left the document marked `deleting` with its vectors."""
    async with app_factory() as (client, state):
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Vault", content=SECRET)
        async with state["sessions"].begin() as session:
            await session.execute(
                text("UPDATE documents SET status = :s WHERE id = :id"),
                {"s": DocumentStatus.DELETING, "id": doc_id},
            )
        # Already invisible before the restart.
        answer = (
            await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        ).json()
        assert answer["sources"] == []
        assert (await client.get(f"/api/documents/{doc_id}/", headers=headers)).status_code == 404
        assert await _count(state, VectorEntry) == 1

    async with app_factory() as (client, state):
        assert await _count(state, Document) == 0
        assert await _count(state, VectorEntry) == 0


async def test_startup_removes_vectors_whose_document_is_gone(app_factory: AppFactory) -> None:
    async with app_factory() as (client, state):
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Vault", content=SECRET)
        # As an older version (or a connection without the foreign-key pragma) left them.
        async with state["engine"].connect() as conn:
            if conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                await conn.exec_driver_sql("DELETE FROM documents")
                await conn.commit()
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            else:
                await conn.exec_driver_sql("SET session_replication_role = replica")
                await conn.exec_driver_sql("DELETE FROM documents")
                await conn.commit()
        assert await _count(state, VectorEntry, VectorEntry.document_id == doc_id) == 1

    async with app_factory() as (_, state):
        assert await _count(state, VectorEntry) == 0


async def test_concurrent_identical_uploads_make_one_document(
    client: httpx.AsyncClient, state: State
) -> None:
    """Reproduced: 8 concurrent identical uploads created 5 documents."""
    headers = await new_user(client)
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/documents/", json={"title": f"Vault {n}", "content": SECRET}, headers=headers
            )
            for n in range(8)
        )
    )
    assert sorted(r.status_code for r in responses).count(201) == 1
    assert {r.json()["id"] for r in responses if r.status_code in (200, 201)} == {
        responses[0].json()["id"]
    }
    assert await _count(state, Document) == 1
    assert await _count(state, VectorEntry) == 1


async def test_local_store_vectors_reference_live_documents(state: State) -> None:
    """A vector for a document that does not exist cannot be written at all."""
    record = ChunkRecord(
        id="doc999-0",
        document_id=999,
        owner_id=1,
        title="ghost",
        text="ghost",
        vector=np.ones(384, dtype=np.float32) / np.sqrt(384),
    )
    with pytest.raises(IntegrityError):
        await state["store"].upsert([record])
    assert await _count(state, VectorEntry) == 0


async def test_insert_race_past_the_duplicate_check_is_stopped_by_the_unique_index(
    client: httpx.AsyncClient, state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind "8 concurrent uploads made 5 documents", made deterministic: the
    second upload's checks see no duplicate (as when both run at once); the index refuses
    its insert and the caller gets the first document."""
    headers = await new_user(client)
    first = await _upload(client, headers, title="Vault", content=SECRET)
    real = DocumentRepository.find_duplicate
    calls = 0

    async def patched(self: DocumentRepository, **kwargs: Any) -> Document | None:
        nonlocal calls
        calls += 1
        return None if calls <= 2 else await real(self, **kwargs)

    monkeypatch.setattr(DocumentRepository, "find_duplicate", patched)
    again = await client.post(
        "/api/documents/", json={"title": "Vault again", "content": SECRET}, headers=headers
    )

    assert calls >= 3  # both checks were blind, then the winner was looked up
    assert again.status_code == 200
    assert again.json()["id"] == first
    assert await _count(state, Document) == 1
