"""A chat turn: store the question, answer it from the knowledge base, store the answer."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.models import ChatMessage
from app.chat.repository import ChatRepository
from app.db import utcnow
from app.errors import InvalidInput, UpstreamError
from app.rag.pipeline import RagPipeline, StreamedAnswer
from app.rag.protocols import Answer, Source


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
        await self.store_bot_answer(user.id, answer.text, answer.sources)
        return answer

    async def stream_reply(self, user: User, message: str) -> StreamedReply:
        """Store the question and retrieve; the answer is generated as the reply is read."""
        text = self.validate(message)
        await self._store(user.id, "user", text)
        streamed = await self.pipeline.stream_answer(text, user_id=user.id)
        return StreamedReply(self, user.id, streamed)

    async def _store(
        self, user_id: int, role: str, content: str, sources: list[dict[str, object]] | None = None
    ) -> int:
        async with self.sessions.begin() as session:
            stored = await ChatRepository(session).add(
                ChatMessage(
                    user_id=user_id,
                    role=role,
                    content=content,
                    timestamp=utcnow(),
                    sources=sources,
                )
            )
        return stored.id

    async def store_bot_answer(self, user_id: int, text: str, sources: Sequence[Source]) -> int:
        return await self._store(user_id, "bot", text, [dataclasses.asdict(s) for s in sources])

    async def history(
        self, user: User, *, limit: int, before_id: int | None = None
    ) -> Sequence[ChatMessage]:
        async with self.sessions() as session:
            return await ChatRepository(session).latest(user.id, limit=limit, before_id=before_id)


class StreamedReply:
    """Server-sent events for one streamed answer: `sources`, `delta`..., then `done`
    (with the stored bot message id) or `error`. The bot message is stored only when the
    answer is complete."""

    def __init__(self, service: ChatService, user_id: int, streamed: StreamedAnswer) -> None:
        self._service = service
        self._user_id = user_id
        self._streamed = streamed

    @staticmethod
    def _event(name: str, data: object) -> str:
        return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events(self) -> AsyncIterator[str]:
        streamed = self._streamed
        yield self._event("sources", [dataclasses.asdict(s) for s in streamed.sources])
        parts: list[str] = []
        try:
            async for delta in streamed.deltas:
                parts.append(delta)
                yield self._event("delta", {"text": delta})
        except UpstreamError as exc:
            yield self._event("error", {"error": exc.code, "detail": exc.detail})
            return
        text = "".join(parts).strip()
        message_id = await self._service.store_bot_answer(self._user_id, text, streamed.sources)
        yield self._event("done", {"id": message_id, "response": text})
