from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.chat.conversations.models import Conversation


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, conversation: Conversation) -> Conversation:
        self.session.add(conversation)
        await self.session.flush()
        return conversation

    async def get_owned(self, owner_id: int, conversation_id: int) -> Conversation | None:
        query = select(Conversation).where(
            Conversation.id == conversation_id, Conversation.owner_id == owner_id
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_client_ref(self, owner_id: int, client_ref: str) -> Conversation | None:
        query = select(Conversation).where(
            Conversation.owner_id == owner_id, Conversation.client_ref == client_ref
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def most_recent(self, owner_id: int) -> Conversation | None:
        # Served by the (owner_id, updated_at) index.
        query = (
            select(Conversation)
            .where(Conversation.owner_id == owner_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def page(
        self, owner_id: int, *, limit: int, after: tuple[datetime, int] | None = None
    ) -> Sequence[Conversation]:
        """The owner's conversations, most recent activity first, after `(updated_at, id)`."""
        query = select(Conversation).where(Conversation.owner_id == owner_id)
        if after is not None:
            updated_at, conversation_id = after
            query = query.where(
                or_(
                    Conversation.updated_at < updated_at,
                    and_(Conversation.updated_at == updated_at, Conversation.id < conversation_id),
                )
            )
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def touch(
        self, conversation_id: int, when: datetime, *, title_if_empty: str | None = None
    ) -> None:
        """Record activity at `when`; an untitled conversation takes `title_if_empty`."""
        values: dict[str, Any] = {"updated_at": when}
        if title_if_empty:
            values["title"] = case(
                (Conversation.title == "", title_if_empty), else_=Conversation.title
            )
        await self.session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(**values),
            execution_options={"synchronize_session": False},
        )

    async def delete_owned(self, owner_id: int, conversation_id: int) -> bool:
        """Delete the conversation (its messages go with it, ON DELETE CASCADE)."""
        result = await self.session.execute(
            delete(Conversation).where(
                Conversation.id == conversation_id, Conversation.owner_id == owner_id
            ),
            execution_options={"synchronize_session": False},
        )
        return bool(getattr(result, "rowcount", 0))
