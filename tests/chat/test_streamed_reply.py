"""`StreamedReply`'s lower-level path (what the OpenAI-compatible API renders): paced deltas,
`finish()`, and what is stored when the consumer stops early or the upstream fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Literal

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.models import ChatMessage
from app.chat.service import ChatService
from app.core.errors import UpstreamError, UpstreamTimeout
from app.rag.pipeline import PipelineConfig, RagPipeline
from app.rag.protocols import (
    ChunkRecord,
    GenerationRequest,
    Matrix,
    ScoredChunk,
    Vector,
    Visibility,
)

CHUNK = ScoredChunk("c1", 1, "Doc", "A fact.", 0.9)


class OneVectorEmbedder:
    dimension = 4

    async def embed(
        self, texts: Sequence[str], *, priority: Literal["query", "bulk"] = "query"
    ) -> Matrix:
        return np.eye(4, dtype=np.float32)[[0] * len(texts)]

    async def aclose(self) -> None:
        return None


class OneChunkStore:
    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        raise NotImplementedError

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        return [CHUNK]

    async def delete(self, ids: Sequence[str]) -> None:
        raise NotImplementedError

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        raise NotImplementedError

    async def remove_orphans(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None


class ScriptedStream:
    """Streams `words`, waiting `pause` seconds before each; fails after them if told to."""

    def __init__(self, words: list[str], *, pause: float = 0.0, fail: bool = False) -> None:
        self.words = words
        self.pause = pause
        self.fail = fail
        self.cancelled = asyncio.Event()

    async def generate(self, request: GenerationRequest) -> str:
        return " ".join(self.words)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        try:
            for word in self.words:
                await asyncio.sleep(self.pause)
                yield word
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if self.fail:
            raise UpstreamTimeout("The model timed out.")

    async def aclose(self) -> None:
        return None


async def _service(
    sessions: async_sessionmaker[AsyncSession], generator: ScriptedStream
) -> tuple[ChatService, User]:
    pipeline = RagPipeline(OneVectorEmbedder(), OneChunkStore(), generator, PipelineConfig())
    async with sessions.begin() as session:
        user = User(email="ada@example.com", username="ada", password_hash="x")
        session.add(user)
        await session.flush()
    return ChatService(sessions, pipeline, max_message_chars=100), user


async def _bots(sessions: async_sessionmaker[AsyncSession]) -> list[ChatMessage]:
    async with sessions() as session:
        query = select(ChatMessage).where(ChatMessage.role == "bot")
        return list((await session.execute(query)).scalars())


async def test_paced_then_finish_stores_complete_answer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, user = await _service(sessions, ScriptedStream(["Fact", " one", " [1]"]))
    reply = await service.stream_reply(user, "question?", visibility=Visibility.of_user(user.id))

    deltas = [d async for d in reply.paced(None)]
    result = await reply.finish()

    assert deltas == ["Fact", " one", " [1]"]
    assert result.answer.text == "Fact one [1]"
    assert [s.chunk_id for s in result.answer.sources] == ["c1"]
    (stored,) = await _bots(sessions)
    assert (stored.id, stored.content, stored.interrupted) == (
        result.message_id,
        "Fact one [1]",
        False,
    )
    assert stored.conversation_id == result.conversation_id == reply.conversation_id


async def test_paced_silent_upstream_yields_none_between_deltas(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, user = await _service(sessions, ScriptedStream(["late"], pause=0.5))
    reply = await service.stream_reply(user, "question?", visibility=Visibility.of_user(user.id))

    items = [d async for d in reply.paced(0.1)]

    assert items[-1] == "late"
    assert items[:-1] == [None] * (len(items) - 1)
    assert len(items) >= 3


async def test_paced_consumer_stops_early_cancels_stream_and_stores_interrupted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    generator = ScriptedStream([f" w{n}" for n in range(100)], pause=0.01)
    service, user = await _service(sessions, generator)
    reply = await service.stream_reply(user, "question?", visibility=Visibility.of_user(user.id))

    async with contextlib.aclosing(reply.paced(None)) as items:
        async for item in items:
            if item == " w2":
                break

    assert generator.cancelled.is_set()
    (stored,) = await _bots(sessions)
    assert stored.interrupted is True
    assert stored.content == "w0 w1 w2"
    assert reply.interrupted is True
    assert (await reply.finish()).message_id == stored.id  # stored once


async def test_paced_consumer_task_cancelled_stores_interrupted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    generator = ScriptedStream(["first", " never"], pause=0.2)
    service, user = await _service(sessions, generator)
    reply = await service.stream_reply(user, "question?", visibility=Visibility.of_user(user.id))
    got_first = asyncio.Event()

    async def consume() -> None:
        async for item in reply.paced(None):
            if item == "first":
                got_first.set()

    task = asyncio.create_task(consume())
    await got_first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    (stored,) = await _bots(sessions)
    assert (stored.content, stored.interrupted) == ("first", True)


async def test_paced_upstream_failure_raises_and_stores_no_answer(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, user = await _service(sessions, ScriptedStream(["partial"], fail=True))
    reply = await service.stream_reply(user, "question?", visibility=Visibility.of_user(user.id))

    with pytest.raises(UpstreamError):
        async for _ in reply.paced(None):
            pass

    assert await _bots(sessions) == []


async def test_events_upstream_failure_ends_with_error_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    service, user = await _service(sessions, ScriptedStream(["partial"], fail=True))
    reply = await service.stream_reply(user, "question?", visibility=Visibility.of_user(user.id))

    events = [e async for e in reply.events()]

    assert events[-1].startswith("event: error\n")
    assert '"upstream_timeout"' in events[-1]
    assert await _bots(sessions) == []
