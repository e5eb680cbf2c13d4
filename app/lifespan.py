"""Builds every long-lived resource once per app, yields them as State, closes them all."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.service import AccountDeletion
from app.admin.service import purge_audit
from app.api.state import State
from app.auth.retention import purge_expired_refresh_tokens
from app.auth.security import PasswordHasher, TokenCodec
from app.chat.retention import JOB_NAME, purge_old_messages
from app.collections.service import CollectionService
from app.core import metrics
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.core.scheduler import JobLease, build_scheduler, schedule_periodic
from app.documents.broker import IngestionBroker
from app.documents.live import live_documents
from app.documents.orphans import OrphanSweep, VectorListing
from app.documents.service import DocumentService
from app.mcp.endpoint import McpEndpoint
from app.rag.factory import build_backends
from app.rag.protocols import VectorStore
from app.usage.meter import UsageMeter
from app.usage.service import purge_usage

logger = logging.getLogger(__name__)


def build_hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.password_hash_time_cost,
        memory_kib=settings.password_hash_memory_kib,
        workers=settings.password_hash_workers,
        max_waiting=settings.password_hash_max_waiting,
    )


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What one retention purge deleted, table by table."""

    messages: int
    refresh_tokens: int
    audit_entries: int
    usage_records: int

    def summary(self) -> str:
        return (
            f"deleted {self.messages} messages, {self.refresh_tokens} expired refresh tokens, "
            f"{self.audit_entries} audit entries, {self.usage_records} usage records"
        )


async def purge_expired(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> RetentionRun:
    """Every retention rule once, in batches of CLEANUP_BATCH_SIZE (the scheduled job and
    `chatbot cleanup` both run this), counted in `retention_deleted_total`."""
    run = RetentionRun(
        messages=await purge_old_messages(
            sessions,
            retention_days=settings.chat_retention_days,
            batch_size=settings.cleanup_batch_size,
        ),
        refresh_tokens=await purge_expired_refresh_tokens(sessions),
        audit_entries=await purge_audit(
            sessions,
            retention_days=settings.audit_retention_days,
            batch_size=settings.cleanup_batch_size,
        ),
        usage_records=await purge_usage(
            sessions,
            retention_days=settings.usage_retention_days,
            batch_size=settings.cleanup_batch_size,
        ),
    )
    metrics.RETENTION_DELETED.labels(table="chat_messages").inc(run.messages)
    metrics.RETENTION_DELETED.labels(table="refresh_tokens").inc(run.refresh_tokens)
    metrics.RETENTION_DELETED.labels(table="admin_audit").inc(run.audit_entries)
    metrics.RETENTION_DELETED.labels(table="token_usage").inc(run.usage_records)
    return run


async def start_retention(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIOScheduler:
    scheduler = build_scheduler()

    async def purge() -> str:
        return (await purge_expired(settings, sessions)).summary()

    await schedule_periodic(
        scheduler,
        JobLease(sessions, JOB_NAME),
        purge,
        timedelta(hours=settings.cleanup_interval_hours),
    )
    scheduler.start()
    return scheduler


def make_lifespan(
    settings: Settings, *, mcp: McpEndpoint | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            engine = create_engine(settings)
            stack.push_async_callback(engine.dispose)
            sessions = create_sessionmaker(engine)
            # The stores outside our database, for the orphan sweep below.
            remote: list[VectorStore] = []

            def wrap_remote(inner: VectorStore) -> VectorStore:
                remote.append(inner)
                return live_documents(sessions)(inner)

            rag = await build_backends(settings, sessions, stack, wrap_remote=wrap_remote)
            broker = await IngestionBroker.connect(settings) if settings.task_broker_url else None
            documents = DocumentService(sessions, rag.embedder, rag.store, settings, broker=broker)
            stack.push_async_callback(documents.aclose)
            await documents.recover()
            # Collection deletions a crash interrupted (their documents were purged above).
            await CollectionService(
                sessions,
                documents,
                max_per_user=settings.collection_max_per_user,
                max_members=settings.collection_max_members,
            ).recover()
            documents.start_sweeping()
            hasher = build_hasher(settings)
            stack.callback(hasher.close)
            # Account deletions a crash interrupted (their documents were purged above).
            accounts = AccountDeletion(sessions, hasher, documents)
            stack.push_async_callback(accounts.aclose)
            await accounts.recover()
            accounts.start_sweeping()
            for store in remote:
                if isinstance(store, VectorListing):
                    sweep = OrphanSweep.from_settings(sessions, store, settings)
                    stack.push_async_callback(sweep.aclose)
                    sweep.start()
            # Not at the top: app.core.ratelimit holds route dependencies, which import this module.
            from app.core.ratelimit import RateLimiter

            ratelimiter = RateLimiter(settings)
            stack.push_async_callback(ratelimiter.aclose)
            stack.callback(metrics.mark_process_dead)
            scheduler = None
            if settings.scheduler_enabled:
                scheduler = await start_retention(settings, sessions)
                # wait=False: in-flight async jobs are cancelled either way (APScheduler 3).
                stack.callback(scheduler.shutdown, wait=False)
            if mcp is not None:
                # The SDK's session manager must run for the app's whole life (its task group).
                await stack.enter_async_context(mcp.running())
            yield State(
                settings=settings,
                engine=engine,
                sessions=sessions,
                hasher=hasher,
                tokens=TokenCodec(settings.signing_key, settings.jwt_algorithm),
                embedder=rag.embedder,
                store=rag.store,
                generator=rag.generator,
                pipeline=rag.pipeline,
                documents=documents,
                scheduler=scheduler,
                ratelimiter=ratelimiter,
                usage=UsageMeter(
                    sessions,
                    default_budget=settings.user_daily_token_budget,
                    reservation_seconds=settings.token_reservation_seconds,
                ),
            )
            logger.info("shutting down")

    return lifespan
