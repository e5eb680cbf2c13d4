from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.core.db import utcnow
from app.documents.models import Document, DocumentStatus
from app.documents.service import content_hash
from app.rag.protocols import Visibility
from tests.conftest import AppFactory, login_headers, signup

CONTENT = "The Brennic ferry leaves the harbour at seven. It returns at noon on weekdays."


async def _interrupted_document(sessions: async_sessionmaker[AsyncSession], owner: int) -> int:
    """A document as a crash mid-ingestion leaves it: processing, no vectors."""
    async with sessions.begin() as session:
        document = Document(
            owner_id=owner,
            shared=False,
            title="Ferry",
            content_type="text/plain",
            content=CONTENT,
            content_hash=content_hash(CONTENT),
            status=DocumentStatus.PROCESSING,
            chunks=1,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(document)
        await session.flush()
        return document.id


async def test_startup_resumes_interrupted_ingestion(
    app_factory: AppFactory, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with app_factory() as (client, _):
        await signup(client)
    async with sessions() as session:
        owner = (await session.execute(select(User.id))).scalar_one()
    doc_id = await _interrupted_document(sessions, owner)
    async with app_factory() as (client, state):
        await state["documents"].wait_idle()
        headers = await login_headers(client)
        document = (await client.get(f"/api/documents/{doc_id}/", headers=headers)).json()
        assert document["status"] == "ready"
        answer = await client.post(
            "/api/chat/", json={"message": "When does the Brennic ferry leave?"}, headers=headers
        )
        assert answer.json()["sources"][0]["document_id"] == doc_id


async def test_document_deleted_during_background_ingestion_leaves_no_vectors(
    app_factory: AppFactory,
) -> None:
    async with app_factory(ingest_inline_max_chunks=0) as (client, state):
        await signup(client)
        headers = await login_headers(client)
        created = await client.post(
            "/api/documents/", json={"title": "Ferry", "content": CONTENT}, headers=headers
        )
        assert created.json()["status"] == "processing"
        deleted = await client.delete(f"/api/documents/{created.json()['id']}/", headers=headers)
        assert deleted.status_code == 204
        await state["documents"].wait_idle()
        store = state["store"]
        assert (
            await store.query(
                (await state["embedder"].embed([CONTENT]))[0],
                top_k=5,
                visibility=Visibility.of_user(1),
            )
            == []
        )
