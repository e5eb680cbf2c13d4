"""Documents for the lexical and hybrid tests: chunk rows need their document (foreign key)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.rag.protocols import ChunkRecord
from tests.conftest import add_placeholder_documents

DOCUMENT_IDS = range(1, 31)


@pytest.fixture(autouse=True)
async def documents(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_placeholder_documents(sessions, DOCUMENT_IDS)


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
