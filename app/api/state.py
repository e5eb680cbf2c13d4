"""What the lifespan builds once per app and every request reads (`request.state`)."""

from __future__ import annotations

from typing import TypedDict

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.security import PasswordHasher, TokenCodec
from app.core.config import Settings
from app.core.ratelimit import RateLimiter
from app.documents.service import DocumentService
from app.rag.pipeline import RagPipeline
from app.rag.protocols import Embedder, Generator, VectorStore
from app.usage.meter import UsageMeter


class State(TypedDict):
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    hasher: PasswordHasher
    tokens: TokenCodec
    embedder: Embedder
    store: VectorStore
    generator: Generator
    pipeline: RagPipeline
    documents: DocumentService
    scheduler: AsyncIOScheduler | None
    ratelimiter: RateLimiter
    usage: UsageMeter
