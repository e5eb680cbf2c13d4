"""The purge job: deletes chat messages older than the retention period, in bounded batches."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chat.models import ChatMessage
from app.db import utcnow

logger = logging.getLogger(__name__)

JOB_NAME = "purge_old_chat_messages"


async def purge_old_messages(
    sessions: async_sessionmaker[AsyncSession], *, retention_days: int, batch_size: int
) -> int:
    """Delete messages older than `retention_days`; each batch is its own short transaction."""
    cutoff = utcnow() - timedelta(days=retention_days)
    total = 0
    while True:
        async with sessions.begin() as session:
            ids = (
                select(ChatMessage.id)
                .where(ChatMessage.timestamp < cutoff)
                .order_by(ChatMessage.id)
                .limit(batch_size)
                .scalar_subquery()
            )
            result = await session.execute(
                delete(ChatMessage).where(ChatMessage.id.in_(ids)),
                execution_options={"synchronize_session": False},
            )
            deleted = int(getattr(result, "rowcount", 0))
        total += deleted
        if deleted < batch_size:
            break
    logger.info("purged %d chat messages older than %d days", total, retention_days)
    return total
