"""Part of the retention job: refresh-token rows that can never be accepted again."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.repository import RefreshTokenRepository
from app.core.db import utcnow

logger = logging.getLogger(__name__)


async def purge_expired_refresh_tokens(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions.begin() as session:
        deleted = await RefreshTokenRepository(session).purge_expired(utcnow())
    logger.info("purged %d expired refresh tokens", deleted)
    return deleted
