"""The purge removes the conversations it leaves empty, and only those."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.chat.retention import purge_old_messages
from app.core.db import utcnow

RETENTION_DAYS = 30
OLD = timedelta(days=RETENTION_DAYS + 1)


async def _user(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions.begin() as session:
        user = User(email="ada@example.com", username="ada", password_hash="x")
        session.add(user)
        await session.flush()
        return user.id


async def _conversation(
    sessions: async_sessionmaker[AsyncSession],
    owner_id: int,
    *,
    updated_ago: timedelta,
    message_ages: list[timedelta],
) -> int:
    async with sessions.begin() as session:
        conversation = Conversation(owner_id=owner_id, title="t", updated_at=utcnow() - updated_ago)
        session.add(conversation)
        await session.flush()
        session.add_all(
            ChatMessage(
                user_id=owner_id,
                conversation_id=conversation.id,
                role="user",
                content="q",
                timestamp=utcnow() - age,
            )
            for age in message_ages
        )
        return conversation.id


async def _conversation_ids(sessions: async_sessionmaker[AsyncSession]) -> set[int]:
    async with sessions() as session:
        return set((await session.scalars(select(Conversation.id))).all())


async def test_purge_conversation_emptied_by_purge_is_deleted(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await _user(sessions)
    emptied = await _conversation(sessions, owner, updated_ago=OLD, message_ages=[OLD, OLD])

    await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=100)

    assert emptied not in await _conversation_ids(sessions)


async def test_purge_conversation_with_recent_message_is_kept(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await _user(sessions)
    kept = await _conversation(
        sessions, owner, updated_ago=timedelta(hours=1), message_ages=[OLD, timedelta(hours=1)]
    )

    deleted = await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=100)

    assert deleted == 1
    assert await _conversation_ids(sessions) == {kept}


async def test_purge_new_empty_conversation_survives(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await _user(sessions)
    fresh = await _conversation(sessions, owner, updated_ago=timedelta(0), message_ages=[])

    await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=100)

    assert await _conversation_ids(sessions) == {fresh}


async def test_purge_many_empty_conversations_deletes_all_in_batches(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await _user(sessions)
    for _ in range(7):
        await _conversation(sessions, owner, updated_ago=OLD, message_ages=[OLD])

    await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=3)

    assert await _conversation_ids(sessions) == set()
