"""The local vector store: vectors persisted in the app database, searched in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import (
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    column,
    delete,
    func,
    insert,
    select,
    table,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from app.core.db import Base
from app.rag.protocols import ChunkRecord, Matrix, ScoredChunk, Vector, Visibility


class VectorEntry(Base):
    """A chunk and its embedding for the local store: private to `owner_id`, or in the
    collection `collection_id`, or shared (both NULL), as in `ChunkRecord`."""

    __tablename__ = "vector_entries"
    __table_args__ = {"sqlite_autoincrement": True}

    # Sequence order is commit order (writers serialise on VectorStoreState), which lets every
    # process load only the rows added since its last look; AUTOINCREMENT: never reused.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chunk_id: Mapped[str] = mapped_column(String(128), unique=True)
    # Vectors die with their document, and a batch written for a deleted one fails.
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(Integer, default=None)
    collection_id: Mapped[int | None] = mapped_column(Integer, default=None)
    title: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)


class VectorStoreState(Base):
    """One row: bumped by every write, so readers notice changes made by other processes."""

    __tablename__ = "vector_store_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    deletions: Mapped[int] = mapped_column(Integer, default=0)


# The documents table as the store sees it (the rag layer does not import the documents
# domain): enough to drop vectors of documents that are gone or being deleted.
_documents = table("documents", column("id", Integer), column("status", String))
DELETING_STATUS = "deleting"
SHARED_OWNER = -1
Int64Array = np.ndarray[Any, np.dtype[np.int64]]


def group_of(owner_id: int | None, collection_id: int | None) -> int:
    """The index block a chunk belongs to, as one integer: a private document's owner id
    (positive), SHARED_OWNER for shared documents, and -2 - id for a collection's documents."""
    if collection_id is not None:
        return -2 - collection_id
    return SHARED_OWNER if owner_id is None else owner_id


def groups_visible(visibility: Visibility) -> set[int]:
    groups = {group_of(None, c) for c in visibility.collection_ids}
    if visibility.owner_id is not None:
        groups.add(visibility.owner_id)
    if visibility.include_shared:
        groups.add(SHARED_OWNER)
    return groups


@dataclass(frozen=True, slots=True)
class _Block:
    """The vectors of one group (an owner, a collection, the shared documents), with their
    row sequence ids."""

    matrix: Matrix
    seqs: Int64Array


@dataclass(frozen=True, slots=True)
class _Index:
    revision: int = -1
    deletions: int = -1
    max_seq: int = 0
    blocks: dict[int, _Block] = field(default_factory=dict)


LOAD_PAGE_ROWS = 5_000


@dataclass(slots=True)
class _Loaded:
    """Rows read from the table, in seq order, as arrays."""

    seqs: Int64Array
    owners: Int64Array
    matrix: Matrix | None = None
    filled: int = 0

    @classmethod
    def empty(cls, capacity: int) -> _Loaded:
        return cls(np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64))

    def add(self, rows: Sequence[Any]) -> None:
        if self.matrix is None:
            dimension = len(rows[0].embedding) // 4
            self.matrix = np.empty((len(self.seqs), dimension), dtype=np.float32)
        for row in rows:
            i = self.filled
            self.matrix[i] = np.frombuffer(row.embedding, dtype=np.float32)
            self.seqs[i] = row.seq
            self.owners[i] = group_of(row.owner_id, row.collection_id)
            self.filled += 1

    def trimmed(self) -> _Loaded:
        if self.filled == len(self.seqs):
            return self
        matrix = None if self.matrix is None else self.matrix[: self.filled]
        return _Loaded(self.seqs[: self.filled], self.owners[: self.filled], matrix, self.filled)


def _top(block: _Block, vector: Vector, k: int) -> list[tuple[int, float]]:
    scores = block.matrix @ vector
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return [(int(block.seqs[i]), float(scores[i])) for i in top]


class LocalVectorStore:
    """Vectors persisted in the app database, searched by brute-force cosine in numpy.

    The in-memory index is grouped by owner and by collection, so a query only multiplies the
    rows the caller may see: their own, their collections' and the shared ones. Each query
    first reads one revision number; when some process has written since, only the new rows
    are loaded (everything, after a deletion).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._index = _Index()
        self._refresh_lock = asyncio.Lock()

    async def _begin_write(self, session: AsyncSession) -> None:
        # First statement of every write transaction: its row lock orders concurrent writers,
        # so row sequence order is commit order and readers can load "everything after seq N".
        result = await session.execute(
            update(VectorStoreState)
            .where(VectorStoreState.id == 1)
            .values(revision=VectorStoreState.revision + 1)
        )
        if getattr(result, "rowcount", 0) == 0:
            await session.execute(insert(VectorStoreState).values(id=1, revision=1, deletions=0))

    async def _delete_ids(self, session: AsyncSession, ids: list[str]) -> None:
        result = await session.execute(delete(VectorEntry).where(VectorEntry.chunk_id.in_(ids)))
        if getattr(result, "rowcount", 0):
            await self._bump_deletions(session)

    @staticmethod
    async def _bump_deletions(session: AsyncSession) -> None:
        # Readers must drop rows: a full reload.
        await session.execute(
            update(VectorStoreState)
            .where(VectorStoreState.id == 1)
            .values(deletions=VectorStoreState.deletions + 1)
        )

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "chunk_id": r.id,
                "document_id": r.document_id,
                "owner_id": r.owner_id,
                "collection_id": r.collection_id,
                "title": r.title,
                "text": r.text,
                "embedding": np.asarray(r.vector, dtype=np.float32).tobytes(),
            }
            for r in records
        ]
        async with self._sessions.begin() as session:
            await self._begin_write(session)
            await self._delete_ids(session, [r.id for r in records])
            await session.execute(insert(VectorEntry), rows)

    async def delete(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        async with self._sessions.begin() as session:
            await self._begin_write(session)
            await self._delete_ids(session, list(ids))

    async def _delete_where(self, condition: ColumnElement[bool]) -> int:
        async with self._sessions.begin() as session:
            await self._begin_write(session)
            result = await session.execute(delete(VectorEntry).where(condition))
            deleted = int(getattr(result, "rowcount", 0))
            if deleted:
                await self._bump_deletions(session)
        return deleted

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        if document_ids:
            await self._delete_where(VectorEntry.document_id.in_(list(document_ids)))

    async def remove_orphans(self) -> int:
        # The foreign key cascades, but rows written by older versions or with foreign keys
        # off (a SQLite connection without the pragma) may remain.
        return await self._delete_where(VectorEntry.document_id.not_in(select(_documents.c.id)))

    async def _refresh(self, session: AsyncSession) -> _Index:
        state = (
            await session.execute(
                select(VectorStoreState.revision, VectorStoreState.deletions).where(
                    VectorStoreState.id == 1
                )
            )
        ).one_or_none()
        revision, deletions = (state.revision, state.deletions) if state else (0, 0)
        if revision == self._index.revision:
            return self._index
        async with self._refresh_lock:  # one loader; the others then find it done
            index = self._index
            if revision == index.revision:
                return index
            full = deletions != index.deletions
            base = _Index() if full else index
            loaded = await self._load(session, after=base.max_seq)
            self._index = await asyncio.to_thread(self._merge, base, loaded, revision, deletions)
            return self._index

    async def _load(self, session: AsyncSession, *, after: int) -> _Loaded:
        """Rows with seq > `after`, read in pages straight into preallocated arrays (a full
        load at 100k rows is ~150 MB of vectors: never hold them twice as Python objects)."""
        count, last = (
            await session.execute(
                select(func.count(VectorEntry.seq), func.max(VectorEntry.seq)).where(
                    VectorEntry.seq > after
                )
            )
        ).one()
        loaded = _Loaded.empty(count)
        cursor = after
        while count and loaded.filled < count:
            page = (
                await session.execute(
                    select(
                        VectorEntry.seq,
                        VectorEntry.owner_id,
                        VectorEntry.collection_id,
                        VectorEntry.embedding,
                    )
                    .where(VectorEntry.seq > cursor, VectorEntry.seq <= last)  # rows added
                    .order_by(VectorEntry.seq)  # meanwhile come with the next refresh
                    .limit(LOAD_PAGE_ROWS)
                )
            ).all()
            if not page:
                break  # rows deleted meanwhile: fewer than counted
            await asyncio.to_thread(loaded.add, page)
            cursor = page[-1].seq
        return loaded.trimmed()

    @staticmethod
    def _merge(base: _Index, loaded: _Loaded, revision: int, deletions: int) -> _Index:
        blocks = dict(base.blocks)
        if loaded.filled and loaded.matrix is not None:
            order = np.argsort(loaded.owners, kind="stable")
            sorted_owners = loaded.owners[order]
            starts = np.flatnonzero(np.r_[True, sorted_owners[1:] != sorted_owners[:-1]])
            for start, end in zip(starts, [*starts[1:], len(order)], strict=True):
                picked = order[start:end]
                owner = int(sorted_owners[start])
                block = _Block(loaded.matrix[picked], loaded.seqs[picked])
                if (old := blocks.get(owner)) is not None:
                    block = _Block(
                        np.concatenate([old.matrix, block.matrix]),
                        np.concatenate([old.seqs, block.seqs]),
                    )
                blocks[owner] = block
        max_seq = int(loaded.seqs[-1]) if loaded.filled else base.max_seq
        return _Index(revision, deletions, max_seq, blocks)

    @staticmethod
    def _search(
        index: _Index, vector: Vector, top_k: int, visibility: Visibility
    ) -> list[tuple[int, float]]:
        vector = np.asarray(vector, dtype=np.float32)
        hits: list[tuple[int, float]] = []
        for owner in groups_visible(visibility):
            if (block := index.blocks.get(owner)) is not None:
                hits.extend(_top(block, vector, top_k))
        hits.sort(key=lambda hit: hit[1], reverse=True)
        return hits[:top_k]

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        if visibility.nothing:
            return []
        async with self._sessions() as session:
            index = await self._refresh(session)
            hits = await asyncio.to_thread(self._search, index, vector, top_k, visibility)
            if not hits:
                return []
            rows = (
                await session.execute(
                    select(
                        VectorEntry.seq,
                        VectorEntry.chunk_id,
                        VectorEntry.document_id,
                        VectorEntry.title,
                        VectorEntry.text,
                    )
                    .join(_documents, _documents.c.id == VectorEntry.document_id)
                    .where(VectorEntry.seq.in_([seq for seq, _ in hits]))
                    # A document being deleted is already invisible, in every process.
                    .where(_documents.c.status != DELETING_STATUS)
                )
            ).all()
        by_seq = {row.seq: row for row in rows}
        return [
            ScoredChunk(
                id=row.chunk_id,
                document_id=row.document_id,
                title=row.title,
                text=row.text,
                score=score,
            )
            for seq, score in hits
            if (row := by_seq.get(seq)) is not None  # deleted since the index was loaded
        ]

    async def count(self) -> int:
        async with self._sessions() as session:
            return int((await session.execute(select(func.count(VectorEntry.seq)))).scalar_one())

    async def aclose(self) -> None:
        self._index = _Index()
