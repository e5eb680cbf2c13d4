from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, Select, Text, cast, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.models import ChatMessage

# id, role, content, timestamp, and sources as stored JSON text (None without sources); and
# whatever columns a `HistoryExtension` adds.
HistoryRow = Row[Any]
# Adds columns (and joins) to the history query, so that one round trip also fetches what a
# higher layer shows beside each message (its feedback).
AnySelect = Select[*tuple[Any, ...]]
HistoryExtension = Callable[[AnySelect], AnySelect]


class ChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, message: ChatMessage) -> ChatMessage:
        self.session.add(message)
        await self.session.flush()
        return message

    async def insert(self, **values: Any) -> int:
        """One Core INSERT of a message's columns, returning its id: no ORM object and no
        unit of work (a chat turn stores two messages)."""
        query = insert(ChatMessage).values(**values).returning(ChatMessage.id)
        return int((await self.session.execute(query)).scalar_one())

    async def latest(
        self,
        user_id: int,
        *,
        limit: int,
        before_id: int | None = None,
        conversation_id: int | None = None,
        extend: HistoryExtension | None = None,
    ) -> list[HistoryRow]:
        """The user's newest `limit` messages (older than `before_id`), oldest first, as rows
        of the columns the history shows, `sources` as its JSON text (no ORM objects and no
        JSON decoding: this is the hot read path), plus the columns `extend` adds."""
        query: AnySelect = select(
            ChatMessage.id,
            ChatMessage.role,
            ChatMessage.content,
            ChatMessage.timestamp,
            # The stored JSON text, not decoded: the history embeds it as it is.
            cast(ChatMessage.sources, Text).label("sources"),
        ).where(ChatMessage.user_id == user_id)
        if conversation_id is not None:
            query = query.where(ChatMessage.conversation_id == conversation_id)
        if before_id is not None:
            query = query.where(ChatMessage.id < before_id)
        if extend is not None:
            query = extend(query)
        # Served by the (user_id, timestamp) index; id breaks ties within one timestamp.
        query = query.order_by(ChatMessage.timestamp.desc(), ChatMessage.id.desc()).limit(limit)
        rows = (await self.session.execute(query)).all()
        return list(reversed(rows))

    async def in_conversation(
        self, conversation_id: int, *, limit: int, after_id: int | None = None
    ) -> Sequence[ChatMessage]:
        """A page of the conversation's messages, oldest first, after message `after_id`."""
        query = select(ChatMessage).where(ChatMessage.conversation_id == conversation_id)
        if after_id is not None:
            query = query.where(ChatMessage.id > after_id)
        # Served by the (conversation_id, id) index.
        query = query.order_by(ChatMessage.id).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def recent(self, conversation_id: int, *, limit: int) -> Sequence[ChatMessage]:
        """The conversation's newest `limit` messages, oldest first."""
        query = (
            select(ChatMessage)
            .where(ChatMessage.conversation_id == conversation_id)
            .order_by(ChatMessage.id.desc())
            .limit(limit)
        )
        rows = (await self.session.execute(query)).scalars().all()
        return list(reversed(rows))
