"""Ratings of answers: a user rates their own bot messages; administrators read them all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.conversations.paging import decode_time_id_cursor, encode_cursor
from app.chat.models import ChatMessage
from app.chat.schemas import SourceRead
from app.core import metrics
from app.core.db import utcnow
from app.core.errors import NotFound
from app.feedback.models import MessageFeedback
from app.feedback.repository import FeedbackRepository
from app.feedback.schemas import FeedbackRead, FeedbackWrite, RatedAnswer, RatedAnswerPage


class MessageNotFound(NotFound):
    code = "message_not_found"
    default_detail = "No such answer of yours."


def feedback_read(feedback: MessageFeedback) -> FeedbackRead:
    return FeedbackRead.model_validate(
        {
            "rating": feedback.rating,
            "comment": feedback.comment,
            "updated_at": feedback.updated_at,
        }
    )


def feedback_of_rows(rows: Sequence[Any]) -> dict[int, dict[str, Any]]:
    """FeedbackRead as JSON for each rated row of a history query extended by
    `app.feedback.repository.with_feedback`, by message id."""
    return {
        row.id: FeedbackRead.model_validate(
            {
                "rating": row.feedback_rating,
                "comment": row.feedback_comment,
                "updated_at": row.feedback_updated_at,
            }
        ).model_dump(mode="json")
        for row in rows
        if row.feedback_rating is not None
    }


class FeedbackService:
    """Works in the caller's session (the request's, committed by the dependency)."""

    def __init__(self, session: AsyncSession) -> None:
        self.feedback = FeedbackRepository(session)

    async def put(self, user: User, message_id: int, data: FeedbackWrite) -> FeedbackRead:
        """Rate one of the user's bot messages, replacing an earlier rating; anything else
        (another user's message, a question, no such message) is `MessageNotFound`."""
        if not await self.feedback.owned_bot_message(user.id, message_id):
            raise MessageNotFound()
        now = utcnow()
        metrics.FEEDBACK.labels(rating=data.rating).inc()
        existing = await self.feedback.get(message_id)
        if existing is None:
            try:
                async with self.feedback.session.begin_nested():
                    existing = await self.feedback.add(
                        MessageFeedback(
                            message_id=message_id,
                            user_id=user.id,
                            rating=data.rating,
                            comment=data.comment,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                return feedback_read(existing)
            except IntegrityError:  # a concurrent PUT inserted it first, or the message went
                existing = await self.feedback.get(message_id)
                if existing is None:
                    raise MessageNotFound() from None
        existing.rating = data.rating
        existing.comment = data.comment
        existing.updated_at = now
        await self.feedback.session.flush()
        return feedback_read(existing)

    async def delete(self, user: User, message_id: int) -> None:
        if not await self.feedback.owned_bot_message(user.id, message_id):
            raise MessageNotFound()
        await self.feedback.delete(user.id, message_id)

    async def of_messages(
        self, user_id: int, message_ids: Sequence[int]
    ) -> dict[int, FeedbackRead]:
        """The user's feedback on these of their messages."""
        found = await self.feedback.for_messages(user_id, message_ids)
        return {mid: feedback_read(f) for mid, f in found.items()}

    async def page(
        self,
        *,
        limit: int,
        rating: str | None,
        since: datetime | None,
        cursor: str | None,
    ) -> RatedAnswerPage:
        after = decode_time_id_cursor(cursor) if cursor else None
        rows = await self.feedback.rated_answers(
            limit=limit + 1, rating=rating, since=since, after=after
        )
        items = [_rated(*row) for row in rows[:limit]]
        more = len(rows) > limit
        last = items[-1] if items else None
        return RatedAnswerPage(
            items=items,
            next_cursor=encode_cursor(last.rated_at, last.message_id) if more and last else None,
        )


def _rated(feedback: MessageFeedback, message: ChatMessage, question: str | None) -> RatedAnswer:
    return RatedAnswer.model_validate(
        {
            "message_id": message.id,
            "conversation_id": message.conversation_id,
            "user_id": message.user_id,
            "rating": feedback.rating,
            "comment": feedback.comment,
            "rated_at": feedback.updated_at,
            "question": question,
            "answer": message.content,
            "sources": None
            if message.sources is None
            else [SourceRead.model_validate(s) for s in message.sources],
            "answered_at": message.timestamp,
        }
    )


async def export_jsonl(
    sessions: async_sessionmaker[AsyncSession],
    *,
    rating: str | None,
    since: datetime | None,
    page_size: int,
) -> AsyncIterator[bytes]:
    """Every matching rated answer as one JSON object per line, newest rating first. Each
    page is read in a short session of its own, so a slow reader holds no connection."""
    cursor: str | None = None
    while True:
        async with sessions() as session:
            page = await FeedbackService(session).page(
                limit=page_size, rating=rating, since=since, cursor=cursor
            )
        for item in page.items:
            yield item.model_dump_json().encode() + b"\n"
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
