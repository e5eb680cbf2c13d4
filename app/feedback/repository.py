from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.chat.models import ChatMessage
from app.feedback.models import MessageFeedback


def with_feedback(query: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """A chat history query (app.chat.repository, `extend`) with each answer's feedback by
    its author as `feedback_rating`, `feedback_comment`, `feedback_updated_at` (None when
    unrated): the history and its ratings in one round trip."""
    return query.outerjoin(
        MessageFeedback,
        and_(
            MessageFeedback.message_id == ChatMessage.id,
            MessageFeedback.user_id == ChatMessage.user_id,
            ChatMessage.role == "bot",
        ),
    ).add_columns(
        MessageFeedback.rating.label("feedback_rating"),
        MessageFeedback.comment.label("feedback_comment"),
        MessageFeedback.updated_at.label("feedback_updated_at"),
    )


class FeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def owned_bot_message(self, user_id: int, message_id: int) -> bool:
        query = select(ChatMessage.id).where(
            ChatMessage.id == message_id,
            ChatMessage.user_id == user_id,
            ChatMessage.role == "bot",
        )
        return (await self.session.execute(query)).first() is not None

    async def get(self, message_id: int) -> MessageFeedback | None:
        return await self.session.get(MessageFeedback, message_id)

    async def add(self, feedback: MessageFeedback) -> MessageFeedback:
        self.session.add(feedback)
        await self.session.flush()
        return feedback

    async def delete(self, user_id: int, message_id: int) -> None:
        await self.session.execute(
            delete(MessageFeedback).where(
                MessageFeedback.message_id == message_id, MessageFeedback.user_id == user_id
            ),
            execution_options={"synchronize_session": False},
        )

    async def for_messages(
        self, user_id: int, message_ids: Sequence[int]
    ) -> dict[int, MessageFeedback]:
        if not message_ids:
            return {}
        query = select(MessageFeedback).where(
            MessageFeedback.user_id == user_id, MessageFeedback.message_id.in_(message_ids)
        )
        return {f.message_id: f for f in (await self.session.execute(query)).scalars()}

    async def rated_answers(
        self,
        *,
        limit: int,
        rating: str | None = None,
        since: datetime | None = None,
        after: tuple[datetime, int] | None = None,
    ) -> list[tuple[MessageFeedback, ChatMessage, str | None]]:
        """Rated answers, most recently rated first, after `(updated_at, message_id)`; each
        with the user message before it in its conversation (the question)."""
        question = aliased(ChatMessage)
        asked = (
            select(question.content)
            .where(
                question.conversation_id == ChatMessage.conversation_id,
                question.role == "user",
                question.id < ChatMessage.id,
            )
            .order_by(question.id.desc())
            .limit(1)
            .correlate(ChatMessage)
            .scalar_subquery()
        )
        query: Any = select(MessageFeedback, ChatMessage, asked).join(
            ChatMessage, ChatMessage.id == MessageFeedback.message_id
        )
        if rating is not None:
            query = query.where(MessageFeedback.rating == rating)
        if since is not None:
            query = query.where(MessageFeedback.updated_at >= since)
        if after is not None:
            rated_at, message_id = after
            query = query.where(
                or_(
                    MessageFeedback.updated_at < rated_at,
                    and_(
                        MessageFeedback.updated_at == rated_at,
                        MessageFeedback.message_id < message_id,
                    ),
                )
            )
        query = query.order_by(
            MessageFeedback.updated_at.desc(), MessageFeedback.message_id.desc()
        ).limit(limit)
        rows = (await self.session.execute(query)).all()
        return [(row[0], row[1], row[2]) for row in rows]

    async def counts(self) -> dict[str, int]:
        query = select(MessageFeedback.rating, func.count()).group_by(MessageFeedback.rating)
        return {row[0]: int(row[1]) for row in (await self.session.execute(query)).all()}
