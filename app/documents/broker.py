"""Background ingestion on a task queue: arq over Redis, run by `chatbot worker` processes.

The app enqueues `index_document(document_id)`; any worker runs it. A job indexes for at most
`TASK_JOB_SLICE_SECONDS` and then queues its own continuation, so jobs stay short, a dead
worker's job is retried soon (arq re-runs it once its in-progress mark expires), and the
document's claim and progress (in the database) make the retry resume from the last finished
batch. Exactly one worker holds a document at a time: the claim decides, not the queue.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from app.core.config import Settings

if TYPE_CHECKING:
    from arq.connections import ArqRedis

logger = logging.getLogger(__name__)

JOB_NAME = "index_document"


def redis_settings(url: str) -> Any:
    from arq.connections import RedisSettings

    return RedisSettings.from_dsn(url)


class IngestionBroker:
    """Enqueues ingestion jobs on arq's Redis queue."""

    def __init__(self, pool: ArqRedis) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, settings: Settings) -> IngestionBroker:
        from arq import create_pool

        assert settings.task_broker_url is not None
        return cls(await create_pool(redis_settings(settings.task_broker_url)))

    async def enqueue(self, document_id: int, *, continuation: bool = False) -> None:
        # A first submission has a stable id, so replicas resuming the same document at
        # start-up queue it once; a continuation is a new job.
        suffix = uuid.uuid4().hex if continuation else "start"
        await self._pool.enqueue_job(
            JOB_NAME, document_id, _job_id=f"index-document-{document_id}-{suffix}"
        )

    async def depth(self) -> int:
        return int(await self._pool.zcard("arq:queue"))

    async def aclose(self) -> None:
        await self._pool.aclose()
