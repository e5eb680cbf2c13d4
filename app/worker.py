"""`chatbot worker`: runs ingestion jobs from the task queue (arq over Redis).

Every replica's API enqueues; any number of workers, on any machines, run the jobs. A worker
builds the embedder and vector store once, like the API's lifespan does, and sweeps for
documents whose claim expired (a worker died mid-document) every INGEST_SWEEP_SECONDS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

from app.core.config import Settings
from app.documents.broker import JOB_NAME, IngestionBroker, redis_settings

logger = logging.getLogger(__name__)


async def index_document(ctx: dict[str, Any], document_id: int) -> str:
    from app.documents.service import DocumentService

    service: DocumentService = ctx["documents"]
    settings: Settings = ctx["settings"]
    deadline = time.monotonic() + settings.task_job_slice_seconds
    outcome = await service.run_job(document_id, deadline=deadline)
    if outcome == "more" and service.broker is not None:
        await service.broker.enqueue(document_id, continuation=True)
    logger.info("index_document %s: %s", document_id, outcome)
    return outcome


async def run_worker(settings: Settings, *, burst: bool = False) -> None:
    from arq import func
    from arq.worker import Worker

    import app.models  # noqa: F401 - every table, so foreign keys resolve
    from app.core.db import create_engine, create_sessionmaker
    from app.documents.live import live_documents
    from app.documents.service import DocumentService
    from app.rag.factory import build_embedder, build_store

    assert settings.task_broker_url is not None
    async with AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        sessions = create_sessionmaker(engine)
        embedder = await build_embedder(settings)
        stack.push_async_callback(embedder.aclose)
        store = await build_store(settings, sessions, wrap_remote=live_documents(sessions))
        stack.push_async_callback(store.aclose)
        broker = await IngestionBroker.connect(settings)
        documents = DocumentService(sessions, embedder, store, settings, broker=broker)
        stack.push_async_callback(documents.aclose)
        await documents.recover()
        documents.start_sweeping()
        worker = Worker(
            functions=[func(index_document, name=JOB_NAME, keep_result=0)],
            redis_settings=redis_settings(settings.task_broker_url),
            ctx={"documents": documents, "settings": settings},
            job_timeout=settings.task_job_timeout_seconds,
            max_tries=settings.task_max_tries,
            max_jobs=1,  # one document at a time per worker: it already uses every core
            burst=burst,
            handle_signals=False,
        )
        logger.info("worker %s waiting for ingestion jobs", documents.worker_id)
        try:
            await worker.async_run()
        finally:
            await worker.close()


def main(settings: Settings, *, burst: bool = False) -> None:
    import signal

    async def run() -> None:
        task = asyncio.create_task(run_worker(settings, burst=burst))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            logger.info("worker stopped")

    asyncio.run(run())
