from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatMessage


class ChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, message: ChatMessage) -> ChatMessage:
        self.session.add(message)
        await self.session.flush()
        return message

    async def latest(
        self, user_id: int, *, limit: int, before_id: int | None = None
    ) -> Sequence[ChatMessage]:
        """The user's newest `limit` messages (older than `before_id`), oldest first."""
        query = select(ChatMessage).where(ChatMessage.user_id == user_id)
        if before_id is not None:
            query = query.where(ChatMessage.id < before_id)
        # Served by the (user_id, timestamp) index; id breaks ties within one timestamp.
        query = query.order_by(ChatMessage.timestamp.desc(), ChatMessage.id.desc()).limit(limit)
        rows = (await self.session.execute(query)).scalars().all()
        return list(reversed(rows))
