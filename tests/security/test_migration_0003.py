# ruff: noqa: S608 - the SQL here is built from the test's own constants
"""Migration 0003 on a database filled at 0002: orphans and duplicates removed, everything
else kept, ids no longer reused (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from app.core.db import create_engine
from tests.conftest import make_settings
from tests.test_migrations import empty_database  # noqa: F401 - fixture

NOW = "2026-11-30 12:00:00"


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


def _document(doc_id: int, owner: int, shared: bool, digest: str) -> str:
    flag = "true" if shared else "false"
    return (
        "INSERT INTO documents (id, owner_id, shared, title, content_type, content, "
        f"content_hash, status, chunks, created_at, updated_at) VALUES ({doc_id}, {owner}, "
        f"{flag}, 't', 'text/plain', 'c', '{digest}', 'ready', 1, '{NOW}', '{NOW}')"
    )


def _vector(seq: int, doc_id: int) -> str:
    return (
        "INSERT INTO vector_entries (seq, chunk_id, document_id, owner_id, title, text, "
        f"embedding) VALUES ({seq}, 'doc{doc_id}-{seq}', {doc_id}, 1, 't', 'x', '')"
    )


async def test_upgrade_from_0002_drops_orphans_and_duplicates(
    empty_database: Config,  # noqa: F811
) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, "0002")
    await _sql(
        empty_database,
        # No explicit ids: PostgreSQL's sequence must hand them out, as in real use.
        "INSERT INTO users (email, username, password_hash, is_active, is_admin, created_at)"
        f" VALUES ('a@x.io', 'a', 'h', true, false, '{NOW}'),"
        f" ('b@x.io', 'b', 'h', true, true, '{NOW}')",
        _document(1, 1, False, "same"),
        _document(2, 1, False, "same"),  # a private duplicate of 1
        _document(3, 2, False, "same"),  # the same content, another owner: kept
        _document(4, 2, True, "shared"),
        _document(5, 1, True, "shared"),  # a shared duplicate of 4
        _vector(1, 1),
        _vector(2, 2),
        _vector(3, 3),
        _vector(4, 4),
        _vector(5, 5),
        _vector(6, 77),  # a document long gone
        f"INSERT INTO refresh_tokens (jti, user_id, expires_at) VALUES ('j1', 1, '{NOW}')",
    )

    await asyncio.to_thread(command.upgrade, empty_database, "0003")

    documents, vectors, tokens = await _sql(
        empty_database,
        "SELECT id FROM documents ORDER BY id",
        "SELECT document_id FROM vector_entries ORDER BY document_id",
        "SELECT jti, family_id FROM refresh_tokens",
    )
    assert [row[0] for row in documents] == [1, 3, 4]
    assert [row[0] for row in vectors] == [1, 3, 4]
    assert [tuple(row) for row in tokens] == [("j1", "j1")]
    # Deleting the highest user no longer hands its id to the next one.
    (_, _, rows) = await _sql(
        empty_database,
        "DELETE FROM users WHERE id = 2",
        "INSERT INTO users (email, username, password_hash, is_active, is_admin, created_at)"
        f" VALUES ('c@x.io', 'c', 'h', true, false, '{NOW}')",
        "SELECT id FROM users WHERE email = 'c@x.io'",
    )
    assert rows[0][0] == 3
