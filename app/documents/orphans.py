"""The background sweep of vectors whose document no longer exists, in a vector store outside
our database (Pinecone).

A crash between a document's deletion steps, or an upload still indexing when its owner's
account was deleted, can leave vectors behind. Queries never return them (`LiveDocumentsStore`
drops chunks of missing documents) but they cost storage and query candidates. The sweep walks
the store's ids one bounded page at a time, looks up the pages' `document_id`s in one query,
and deletes the vectors of documents that are gone. No database connection is held while the
store is called: each page is list (store), look-up (database, a short session), delete (store).

A document row is committed before its first vector is written and removed only after its
vectors, and ids are never reused, so a vector whose document row is missing is an orphan for
good. Documents still `deleting` are left to their purge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import metrics
from app.core.config import Settings
from app.core.scheduler import CATCH_UP_DELAY_SECONDS, JobLease, is_due, run_exclusive
from app.documents.models import Document

logger = logging.getLogger(__name__)

JOB_NAME = "orphan_vectors"


@runtime_checkable
class VectorListing(Protocol):
    """A store that can list its vectors page by page (app.rag.backends.pinecone)."""

    async def list_document_ids(
        self, *, limit: int, token: str | None = None
    ) -> tuple[dict[str, int | None], str | None]:
        """One page: vector id -> its `document_id` (None if unknown), and the next token."""
        ...

    async def delete(self, ids: Sequence[str]) -> None: ...


class OrphanSweep:
    """Removes orphaned vectors from `store`, at most `max_pages` pages of `page_size` ids per
    run. A run continues where the previous one stopped (the position is kept in memory, so a
    restart begins a new pass); one process at a time runs it, at most once per interval
    across every process (a `job_runs` lease)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: VectorListing,
        *,
        page_size: int,
        max_pages: int,
        interval_seconds: float,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.page_size = page_size
        self.max_pages = max_pages
        self.interval = timedelta(seconds=interval_seconds)
        self._token: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lease = JobLease(sessions, JOB_NAME)

    @classmethod
    def from_settings(
        cls, sessions: async_sessionmaker[AsyncSession], store: VectorListing, settings: Settings
    ) -> OrphanSweep:
        return cls(
            sessions,
            store,
            page_size=settings.orphan_sweep_page_size,
            max_pages=settings.orphan_sweep_pages,
            interval_seconds=settings.orphan_sweep_seconds,
        )

    async def run(self) -> int:
        """One run of up to `max_pages` pages; returns how many vectors it removed."""
        removed = 0
        for _ in range(self.max_pages):
            found, next_token = await self.store.list_document_ids(
                limit=self.page_size, token=self._token
            )
            metrics.ORPHAN_SWEEP_PAGES.inc()
            removed += await self._remove_orphans(found)
            self._token = next_token
            if next_token is None:
                break  # a full pass is over: the next run starts a new one
        return removed

    async def _remove_orphans(self, found: dict[str, int | None]) -> int:
        document_ids = {d for d in found.values() if d is not None}
        if not document_ids:
            return 0  # vectors without a document id are not ours to judge
        async with self.sessions() as session:
            existing = set(
                (
                    await session.execute(
                        select(Document.id).where(Document.id.in_(sorted(document_ids)))
                    )
                ).scalars()
            )
        orphans = [v for v, d in found.items() if d is not None and d not in existing]
        if orphans:
            await self.store.delete(orphans)
            metrics.ORPHAN_VECTORS_REMOVED.inc(len(orphans))
            logger.info(
                "removed %d orphaned vector(s) of %d missing document(s)",
                len(orphans),
                len(document_ids - existing),
            )
        return len(orphans)

    async def run_if_due(self) -> int | None:
        """`run()` under the lease when the last run anywhere is an interval old; None if
        it was not due or another process is running it."""
        # 0.9: a process waking a moment early must not wait a whole second interval.
        if not await is_due(self._lease, self.interval * 0.9):
            return None
        removed = 0

        async def job() -> str:
            nonlocal removed
            removed = await self.run()
            return f"removed {removed} orphaned vectors"

        return removed if await run_exclusive(self._lease, job) is not None else None

    def start(self) -> None:
        """Sweep in the background: soon after start-up (start-up itself stays fast), then
        every interval."""
        interval = self.interval.total_seconds()
        if self._task is not None or interval <= 0:
            return

        async def loop() -> None:
            await asyncio.sleep(min(interval, CATCH_UP_DELAY_SECONDS))
            while True:
                try:
                    await self.run_if_due()
                except Exception:  # the store or the database may be down: try next time
                    logger.warning("orphan vector sweep failed", exc_info=True)
                await asyncio.sleep(interval)

        self._task = asyncio.create_task(loop())

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
