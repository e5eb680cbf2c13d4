"""Titled chunks: section headings of markdown chunks, and ingestion embedding the title and
heading while the stored text stays the chunk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.documents.chunking import chunk_text, markdown_headings
from app.documents.service import DocumentService, NewDocument
from app.rag.hybrid import HybridStore
from app.rag.lexical import LexicalIndex
from app.rag.protocols import ChunkRecord, Matrix, ScoredChunk, Vector, Visibility
from tests.conftest import make_settings

MARKDOWN = (
    "# Guide\nIntro sentence one. Intro two.\n\n## Setup\nInstall it now. "
    + " ".join(f"Setup step {i} is done." for i in range(30))
    + "\n\n### Linux\nUse apt. "
    + " ".join(f"Linux step {i} is done." for i in range(30))
    + "\n\n## Usage\nRun the tool."
)


def test_markdown_headings_follow_the_section_each_chunk_starts_in() -> None:
    chunks = chunk_text(MARKDOWN, max_tokens=60, overlap_tokens=15)

    headings = markdown_headings(chunks)

    assert headings[0] == "Guide"
    assert headings[1] == "Guide > Setup"
    assert "Guide > Setup > Linux" in headings
    linux = headings.index("Guide > Setup > Linux")
    assert chunks[linux].startswith("Linux step") or chunks[linux].startswith("Use apt")
    assert len(headings) == len(chunks)


def test_markdown_headings_sibling_replaces_deeper_section() -> None:
    chunks = ["# A\n## B\ntext b", "## C\ntext c", "text more"]

    assert markdown_headings(chunks) == ["A > B", "A > C", "A > C"]


class RecordingEmbedder:
    dimension = 4

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str], priority: str = "interactive") -> Matrix:
        self.texts.extend(texts)
        return np.tile(np.array([1, 0, 0, 0], dtype=np.float32), (len(texts), 1))

    async def aclose(self) -> None:
        return None


class RecordingStore:
    def __init__(self) -> None:
        self.records: list[ChunkRecord] = []

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        self.records.extend(records)

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        return []

    async def delete(self, ids: Sequence[str]) -> None:
        return None

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        return None

    async def remove_orphans(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None


async def test_ingestion_embeds_title_and_heading_and_stores_plain_text(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    embedder, dense = RecordingEmbedder(), RecordingStore()
    store = HybridStore(dense, LexicalIndex(sessions))
    service = DocumentService(sessions, embedder, store, make_settings(database_url))
    content = "# Leave\n## Carry-over\nIt is limited to five days."

    await service.add(
        NewDocument(title="Staff handbook", content=content, content_type="text/markdown"),
        owner_id=None,
        background=False,
    )

    assert embedder.texts == [
        "Staff handbook — Leave — Carry-over\n# Leave\n## Carry-over\nIt is limited to five days."
    ]
    assert [r.text for r in dense.records] == [
        "# Leave\n## Carry-over\nIt is limited to five days."
    ]
    assert dense.records[0].heading == "Leave > Carry-over"
    # The lexical index finds the chunk by its title although the text never says it.
    hits = await store.lexical.search("staff handbook", top_k=1, visibility=Visibility.of_user(1))
    assert [h.text for h in hits] == [dense.records[0].text]


async def test_ingestion_plain_text_has_no_heading(
    sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    embedder, dense = RecordingEmbedder(), RecordingStore()
    service = DocumentService(sessions, embedder, dense, make_settings(database_url))

    await service.add(
        NewDocument(title="Notes", content="# not a heading in a text file"),
        owner_id=None,
        background=False,
    )

    assert embedder.texts == ["Notes\n# not a heading in a text file"]
    assert dense.records[0].heading == ""
