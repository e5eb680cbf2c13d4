# ruff: noqa: S608 - the SQL here is built from the test's own constants
"""Migration 0009 on a database filled at 0008: existing users follow the default budget,
existing keys have no scope, and feedback and usage can be recorded against the old rows; the
downgrade keeps every row it found."""

from __future__ import annotations

import asyncio
import json

from alembic import command
from alembic.config import Config

from tests.security.test_migration_0003 import NOW, _sql
from tests.test_migrations import empty_database  # noqa: F401 - fixture


async def test_upgrade_keeps_users_keys_and_messages_and_accepts_new_rows(
    empty_database: Config,  # noqa: F811
) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, "0008")
    await _sql(
        empty_database,
        "INSERT INTO users (email, username, password_hash, is_active, is_admin, created_at)"
        f" VALUES ('a@x.io', 'a', 'h', true, true, '{NOW}')",
        "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at)"
        f" VALUES (1, 'k', 'sk-x', '{'0' * 64}', '{NOW}')",
        "INSERT INTO conversations (owner_id, title, created_at, updated_at)"
        f" VALUES (1, 't', '{NOW}', '{NOW}')",
        "INSERT INTO chat_messages (user_id, conversation_id, role, content, timestamp)"
        f" VALUES (1, 1, 'bot', 'an answer', '{NOW}')",
    )

    await asyncio.to_thread(command.upgrade, empty_database, "0009")

    budget, scopes = await _sql(
        empty_database,
        "SELECT daily_token_budget FROM users",
        "SELECT scopes FROM api_keys",
    )
    assert budget == [(None,)]
    stored = scopes[0][0]
    assert (json.loads(stored) if isinstance(stored, str) else stored) == []
    await _sql(
        empty_database,
        "INSERT INTO message_feedback (message_id, user_id, rating, created_at, updated_at)"
        f" VALUES (1, 1, 'up', '{NOW}', '{NOW}')",
        "INSERT INTO token_usage (user_id, day, created_at, path, prompt_tokens,"
        f" completion_tokens, estimated) VALUES (1, '2026-11-30', '{NOW}', 'chat', 3, 2, false)",
        "INSERT INTO admin_audit (actor_id, actor_email, action, target_type, details, created_at)"
        f" VALUES (1, 'a@x.io', 'user.update', 'user', '{{}}', '{NOW}')",
    )
    # Feedback and usage go with their message and user.
    deleted = await _sql(
        empty_database,
        "DELETE FROM chat_messages",
        "SELECT count(*) FROM message_feedback",
        "SELECT count(*) FROM token_usage",
    )
    assert deleted[1:] == [[(0,)], [(1,)]]

    await asyncio.to_thread(command.downgrade, empty_database, "0008")

    users, keys = await _sql(empty_database, "SELECT email FROM users", "SELECT name FROM api_keys")
    assert (users, keys) == ([("a@x.io",)], [("k",)])
