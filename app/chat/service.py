"""A chat turn: store the question, answer it from the knowledge base, store the answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.models import ChatMessage
from app.chat.repository import ChatRepository
from app.db import utcnow
from app.errors import InvalidInput
from app.rag.pipeline import RagPipeline
from app.rag.protocols import Answer


class ChatService:
    """Each database step is its own short transaction: no pooled connection is held while
    the embedder, vector store or LLM works, so concurrency is bounded by them, not the pool."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pipeline: RagPipeline,
        *,
        max_message_chars: int,
    ) -> None:
        self.sessions = sessions
        self.pipeline = pipeline
        self.max_message_chars = max_message_chars

    def validate(self, message: str) -> str:
        text = message.strip()
        if not text:
            raise InvalidInput("The message is empty.")
        if len(text) > self.max_message_chars:
            raise InvalidInput(f"The message is longer than {self.max_message_chars} characters.")
        return text

    async def reply(self, user: User, message: str) -> Answer:
        text = self.validate(message)
        # Stored first, so the question survives an upstream failure.
        await self._store(user.id, "user", text)
        answer = await self.pipeline.answer(text, user_id=user.id)
        sources = [dataclasses.asdict(s) for s in answer.sources]
        await self._store(user.id, "bot", answer.text, sources)
        return answer

    async def _store(
        self, user_id: int, role: str, content: str, sources: list[dict[str, object]] | None = None
    ) -> None:
        async with self.sessions.begin() as session:
            await ChatRepository(session).add(
                ChatMessage(
                    user_id=user_id,
                    role=role,
                    content=content,
                    timestamp=utcnow(),
                    sources=sources,
                )
            )

    async def history(
        self, user: User, *, limit: int, before_id: int | None = None
    ) -> Sequence[ChatMessage]:
        async with self.sessions() as session:
            return await ChatRepository(session).latest(user.id, limit=limit, before_id=before_id)
