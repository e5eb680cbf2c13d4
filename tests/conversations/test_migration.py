"""Migration 0004 on a database filled at revision 0003: every message lands in one
conversation per user, nothing is lost, and `conversation_id` is then required."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.chat.conversations.models import Conversation
from app.cli import alembic_config
from app.core.db import create_engine
from app.models import Base
from tests.conftest import make_settings

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LONG_QUESTION = (
    "How many days of paid annual leave do employees get, and can unused days be carried over "
    "into the next year?"
)


async def _execute(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = create_engine(make_settings(url))
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


async def _rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(make_settings(url))
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql))).all())
    finally:
        await engine.dispose()


async def _reset_schema(url: str, *, create: bool) -> None:
    engine = create_engine(make_settings(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
            if create:
                await conn.run_sync(Base.metadata.create_all)
    finally:
        await engine.dispose()


@pytest.fixture
async def at_0003(database_url: str) -> AsyncIterator[Config]:
    """A database migrated to 0003; the full schema is back afterwards (PostgreSQL shares it)."""
    await _reset_schema(database_url, create=False)
    config = alembic_config(make_settings(database_url))
    await asyncio.to_thread(command.upgrade, config, "0003")
    yield config
    await _reset_schema(database_url, create=True)


def _message(
    id_: int, user_id: int, role: str, content: str, minutes: int
) -> tuple[str, dict[str, Any]]:
    return (
        "INSERT INTO chat_messages (id, user_id, role, content, timestamp, sources) "
        "VALUES (:id, :user_id, :role, :content, :ts, NULL)",
        {
            "id": id_,
            "user_id": user_id,
            "role": role,
            "content": content,
            "ts": T0 + timedelta(minutes=minutes),
        },
    )


async def _fill(url: str) -> None:
    users = [
        (
            "INSERT INTO users (id, email, username, password_hash, is_active, is_admin, "
            "created_at) VALUES (:id, :email, :name, 'x', :yes, :no, :ts)",
            {
                "id": n,
                "email": f"u{n}@example.com",
                "name": f"u{n}",
                "yes": True,
                "no": False,
                "ts": T0,
            },
        )
        for n in (1, 2, 3)
    ]
    messages = [
        _message(10, 1, "user", LONG_QUESTION, 0),
        _message(11, 1, "bot", "Employees receive 25 days [1].", 1),
        _message(12, 2, "user", "Where is the office?", 2),
        _message(13, 1, "user", "And how many of those carry over?", 3),
        _message(14, 2, "bot", "On Harbour Street [1].", 4),
        _message(15, 1, "bot", "Until the end of March [1].", 5),
    ]
    # User 3 has no messages and must get no conversation.
    await _execute(url, *users, *messages)


async def test_upgrade_filled_0003_database_puts_messages_in_one_conversation_per_user(
    at_0003: Config, database_url: str
) -> None:
    await _fill(database_url)

    await asyncio.to_thread(command.upgrade, at_0003, "head")

    conversations = await _rows(
        database_url,
        "SELECT id, owner_id, title, created_at, updated_at FROM conversations ORDER BY owner_id",
    )
    assert [c.owner_id for c in conversations] == [1, 2]
    by_owner = {c.owner_id: c.id for c in conversations}
    messages = await _rows(
        database_url,
        "SELECT id, user_id, conversation_id, content, interrupted FROM chat_messages ORDER BY id",
    )
    assert [m.id for m in messages] == [10, 11, 12, 13, 14, 15]
    assert all(m.conversation_id == by_owner[m.user_id] for m in messages)
    assert not any(m.interrupted for m in messages)
    assert messages[3].content == "And how many of those carry over?"


async def test_upgrade_filled_0003_database_titles_conversation_by_first_question(
    at_0003: Config, database_url: str
) -> None:
    await _fill(database_url)

    await asyncio.to_thread(command.upgrade, at_0003, "head")

    rows = await _rows(database_url, "SELECT owner_id, title FROM conversations ORDER BY owner_id")
    titles = {r.owner_id: r.title for r in rows}
    assert titles[2] == "Where is the office?"
    assert titles[1].endswith("…")
    assert LONG_QUESTION.startswith(titles[1][:-1])
    assert len(titles[1]) <= 60


async def test_upgrade_filled_0003_database_spans_first_to_last_message(
    at_0003: Config, database_url: str
) -> None:
    await _fill(database_url)

    await asyncio.to_thread(command.upgrade, at_0003, "head")

    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as conn:
            (first,) = (
                await conn.execute(select(Conversation).where(Conversation.owner_id == 1))
            ).all()
    finally:
        await engine.dispose()
    assert first.created_at == T0
    assert first.updated_at == T0 + timedelta(minutes=5)


async def test_upgrade_head_message_without_conversation_is_refused(
    at_0003: Config, database_url: str
) -> None:
    await _fill(database_url)
    await asyncio.to_thread(command.upgrade, at_0003, "head")

    with pytest.raises(IntegrityError):
        await _execute(database_url, _message(99, 1, "user", "orphan", 9))


async def test_downgrade_to_0003_after_upgrade_keeps_messages(
    at_0003: Config, database_url: str
) -> None:
    await _fill(database_url)
    await asyncio.to_thread(command.upgrade, at_0003, "head")

    await asyncio.to_thread(command.downgrade, at_0003, "0003")

    rows = await _rows(database_url, "SELECT id FROM chat_messages ORDER BY id")
    assert [r.id for r in rows] == [10, 11, 12, 13, 14, 15]
