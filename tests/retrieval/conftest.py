"""Documents for the lexical and hybrid tests: chunk rows need their document (foreign key)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import utcnow
from app.documents.models import Document, DocumentStatus
from app.rag.protocols import ChunkRecord

DOCUMENT_IDS = range(1, 31)


@pytest.fixture(autouse=True)
async def documents(sessions: async_sessionmaker[AsyncSession]) -> None:
    now = utcnow()
    async with sessions.begin() as session:
        session.add_all(
            Document(
                id=n,
                owner_id=None,
                shared=True,
                title=f"doc {n}",
                content_type="text/plain",
                content=f"text {n}",
                content_hash=f"{n:064d}",
                status=DocumentStatus.READY,
                chunks=1,
                created_at=now,
                updated_at=now,
            )
            for n in DOCUMENT_IDS
        )
        if session.get_bind().dialect.name == "postgresql":
            # Explicit ids leave the sequence behind; documents added later need the next one.
            await session.execute(
                text("SELECT setval(pg_get_serial_sequence('documents', 'id'), 1000)")
            )


def unit(seed: int, dim: int = 8) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def record(
    chunk: str,
    document_id: int,
    text: str,
    *,
    owner: int | None = None,
    title: str = "",
    heading: str = "",
    vector: np.ndarray | None = None,
) -> ChunkRecord:
    return ChunkRecord(
        id=chunk,
        document_id=document_id,
        owner_id=owner,
        title=title or f"doc {document_id}",
        text=text,
        vector=unit(document_id) if vector is None else vector,
        heading=heading,
    )
