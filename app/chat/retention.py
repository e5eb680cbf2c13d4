"""The purge job: deletes chat messages older than the retention period, in bounded batches,
then the conversations it left empty."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.core.db import utcnow

logger = logging.getLogger(__name__)

JOB_NAME = "purge_old_chat_messages"


async def purge_old_messages(
    sessions: async_sessionmaker[AsyncSession],
    *,
    retention_days: int,
    batch_size: int,
    now: datetime | None = None,
) -> int:
    """Delete messages older than `retention_days` (strictly: one exactly that old stays),
    then the conversations left without messages and idle as long; each batch is its own
    short transaction. Returns the number of messages deleted. `now` is the clock (tests)."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
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
    conversations = await _purge_empty_conversations(sessions, cutoff, batch_size)
    logger.info(
        "purged %d chat messages and %d empty conversations older than %d days",
        total,
        conversations,
        retention_days,
    )
    return total


async def _purge_empty_conversations(
    sessions: async_sessionmaker[AsyncSession], cutoff: datetime, batch_size: int
) -> int:
    # The age condition spares a conversation just created and not yet written to.
    has_messages = exists().where(ChatMessage.conversation_id == Conversation.id)
    total = 0
    while True:
        async with sessions.begin() as session:
            ids = (
                select(Conversation.id)
                .where(Conversation.updated_at < cutoff, ~has_messages)
                .order_by(Conversation.id)
                .limit(batch_size)
                .scalar_subquery()
            )
            result = await session.execute(
                delete(Conversation).where(Conversation.id.in_(ids)),
                execution_options={"synchronize_session": False},
            )
            deleted = int(getattr(result, "rowcount", 0))
        total += deleted
        if deleted < batch_size:
            return total
