"""Conversations of one user: create, list, rename, delete, and read their messages."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.conversations.models import Conversation
from app.chat.conversations.paging import decode_id_cursor, decode_time_id_cursor, encode_cursor
from app.chat.conversations.repository import ConversationRepository
from app.chat.models import ChatMessage
from app.chat.repository import ChatRepository
from app.core.db import utcnow
from app.core.errors import InvalidInput, NotFound


class ConversationNotFound(NotFound):
    default_detail = "Conversation not found."


def shorten_title(text: str, limit: int) -> str:
    """`text` on one line, cut at a word boundary to at most `limit` characters."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    # Cut at the last space unless that would throw away more than half.
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


class ConversationService:
    """Works in the caller's session (the request's, committed by the dependency)."""

    def __init__(self, session: AsyncSession, *, title_chars: int) -> None:
        self.conversations = ConversationRepository(session)
        self.messages = ChatRepository(session)
        self.title_chars = title_chars

    async def create(self, owner_id: int, title: str | None) -> Conversation:
        name = (title or "").strip()
        if title is not None and not name:
            raise InvalidInput("The title is empty.")
        now = utcnow()
        return await self.conversations.add(
            Conversation(owner_id=owner_id, title=name, created_at=now, updated_at=now)
        )

    async def get(self, owner_id: int, conversation_id: int) -> Conversation:
        conversation = await self.conversations.get_owned(owner_id, conversation_id)
        if conversation is None:
            raise ConversationNotFound()
        return conversation

    async def page(
        self, owner_id: int, *, limit: int, cursor: str | None
    ) -> tuple[Sequence[Conversation], str | None]:
        after = decode_time_id_cursor(cursor) if cursor else None
        rows = await self.conversations.page(owner_id, limit=limit + 1, after=after)
        items = rows[:limit]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].updated_at, items[-1].id) if more else None

    async def rename(self, owner_id: int, conversation_id: int, title: str) -> Conversation:
        name = title.strip()
        if not name:
            raise InvalidInput("The title is empty.")
        conversation = await self.get(owner_id, conversation_id)
        conversation.title = name
        conversation.updated_at = utcnow()
        await self.conversations.session.flush()
        return conversation

    async def delete(self, owner_id: int, conversation_id: int) -> None:
        if not await self.conversations.delete_owned(owner_id, conversation_id):
            raise ConversationNotFound()

    async def messages_page(
        self, owner_id: int, conversation_id: int, *, limit: int, cursor: str | None
    ) -> tuple[Sequence[ChatMessage], str | None]:
        await self.get(owner_id, conversation_id)
        after = decode_id_cursor(cursor) if cursor else None
        rows = await self.messages.in_conversation(conversation_id, limit=limit + 1, after_id=after)
        items = rows[:limit]
        more = len(rows) > limit
        return items, encode_cursor(items[-1].id) if more else None
