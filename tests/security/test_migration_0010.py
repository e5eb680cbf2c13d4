# ruff: noqa: S608 - the SQL here is built from the test's own constants
"""Migration 0010 on a database filled at 0009: accounts disabled before it (by `chatbot
deactivate`) carry no deletion mark, so the start-up recovery of interrupted account
deletions leaves them and their documents alone; the downgrade keeps every row (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from app.core.db import create_engine
from app.main import create_app
from app.testing import running_app
from tests.conftest import make_settings
from tests.test_migrations import empty_database  # noqa: F401 - fixture

NOW = "2026-12-03 12:00:00"


async def _sql(config: Config, *statements: str) -> list[Any]:
    engine = create_engine(make_settings(config.attributes["database_url"]))
    results: list[Any] = []
    try:
        async with engine.begin() as conn:
            for statement in statements:
                result = await conn.execute(text(statement))
                results.append(result.all() if result.returns_rows else None)
    finally:
        await engine.dispose()
    return results


async def test_upgrade_to_0010_then_start_up_keeps_deactivated_accounts(
    empty_database: Config,  # noqa: F811
) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, "0009")
    await _sql(
        empty_database,
        "INSERT INTO users (email, username, password_hash, is_active, is_admin, created_at)"
        f" VALUES ('on@x.io', 'on', 'h', true, false, '{NOW}'),"
        f" ('off@x.io', 'off', 'h', false, false, '{NOW}')",
        "INSERT INTO documents (owner_id, shared, title, content_type, content, content_hash,"
        " status, chunks, indexed_chunks, created_at, updated_at) SELECT id, false, 't',"
        f" 'text/plain', 'c', 'digest', 'ready', 1, 1, '{NOW}', '{NOW}' FROM users"
        " WHERE email = 'off@x.io'",
    )

    await asyncio.to_thread(command.upgrade, empty_database, "0010")
    settings = make_settings(empty_database.attributes["database_url"])
    async with running_app(create_app(settings)):
        pass  # start-up ran the recovery of interrupted account deletions
    users, documents = await _sql(
        empty_database,
        "SELECT email, is_active, deletion_started_at, deletion_claimed_until FROM users"
        " ORDER BY email",
        "SELECT count(*) FROM documents",
    )

    assert [tuple(row) for row in users] == [
        ("off@x.io", False, None, None),
        ("on@x.io", True, None, None),
    ]
    assert documents[0][0] == 1

    await asyncio.to_thread(command.downgrade, empty_database, "0009")
    (emails,) = await _sql(empty_database, "SELECT email FROM users ORDER BY email")
    assert [row[0] for row in emails] == ["off@x.io", "on@x.io"]
