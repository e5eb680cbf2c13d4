"""The history's fast JSON path says exactly what the Pydantic response model would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.conversations.models import Conversation
from app.chat.history_json import messages_json
from app.chat.models import ChatMessage
from app.chat.repository import ChatRepository
from app.chat.schemas import MessageRead


async def test_messages_json_rows_match_pydantic_serialization(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    start = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    source = {
        "document_id": 3,
        "title": 'Hand\u00e9book "v2"',
        "chunk_id": "3:0",
        "score": 0.7123,
        "snippet": "Leave: 25 days\n",
    }
    async with sessions.begin() as session:
        user = User(email="a@example.com", username="a", password_hash="x")
        session.add(user)
        await session.flush()
        conversation = Conversation(owner_id=user.id, title="t")
        session.add(conversation)
        await session.flush()
        session.add_all(
            ChatMessage(
                user_id=user.id,
                conversation_id=conversation.id,
                role="user" if n % 2 == 0 else "bot",
                content=f"message {n} \u2603 <b>&</b>",
                # whole seconds, microseconds, and sub-millisecond values
                timestamp=start + timedelta(seconds=n, microseconds=n * 12_345 % 1_000_000),
                sources=None if n % 2 == 0 else [source, {**source, "score": 0.5}],
            )
            for n in range(6)
        )
        user_id = user.id
    async with sessions() as session:
        rows = await ChatRepository(session).latest(user_id, limit=10)
    # The response model over the same rows, with the sources decoded as the ORM would.
    expected = TypeAdapter(list[MessageRead]).dump_json(
        [
            MessageRead.model_validate(
                {**row._mapping, "sources": row.sources and json.loads(row.sources)}
            )
            for row in rows
        ]
    )
    assert len(rows) == 6
    assert json.loads(messages_json(rows)) == json.loads(expected)
