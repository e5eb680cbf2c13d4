# ruff: noqa: S608 - the SQL here is built from the test's own constants
"""Migration 0008 on a database filled at 0007: every document, vector, lexical row and API
key keeps what it showed to whom; collection documents can then be added beside them."""

from __future__ import annotations

import asyncio
from importlib import import_module

import numpy as np
from alembic import command
from alembic.config import Config

from app.core.db import create_engine, create_sessionmaker
from app.documents.repository import DocumentRepository
from app.rag.backends.local import LocalVectorStore
from app.rag.lexical import LexicalIndex
from app.rag.protocols import Visibility
from tests.conftest import make_settings
from tests.retrieval.test_migration_0007 import _document
from tests.security.test_migration_0003 import NOW, _sql
from tests.test_migrations import empty_database  # noqa: F401 - fixture

MIGRATION = import_module("migrations.versions.2026-12-04_collections")
VECTOR = np.full(4, 0.5, dtype=np.float32)


def _user(email: str) -> str:
    return (
        "INSERT INTO users (email, username, password_hash, is_active, is_admin, created_at)"
        f" VALUES ('{email}', 'u', 'h', true, false, '{NOW}')"
    )


def _chunk(table: str, doc_id: int, owner: str, text: str, *, postgres: bool) -> str:
    if table == "vector_entries":
        hexed = VECTOR.tobytes().hex()
        blob = f"decode('{hexed}', 'hex')" if postgres else f"X'{hexed}'"
        return (
            "INSERT INTO vector_entries (chunk_id, document_id, owner_id, title, text, "
            f"embedding) VALUES ('doc{doc_id}-0', {doc_id}, {owner}, 't', '{text}', {blob})"
        )
    return (
        "INSERT INTO lexical_chunks (chunk_id, document_id, owner_id, title, heading, text) "
        f"VALUES ('doc{doc_id}-0', {doc_id}, {owner}, 't', '', '{text}')"
    )


async def test_upgrade_keeps_private_and_shared_visibility_and_unrestricted_keys(
    empty_database: Config,  # noqa: F811
) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, MIGRATION.down_revision)
    postgres = empty_database.attributes["database_url"].startswith("postgresql")
    chunk_tables = ("lexical_chunks", "vector_entries")
    await _sql(
        empty_database,
        _user("a@x.io"),
        _user("b@x.io"),
        _document(1, 1, False, "one"),
        _document(2, 1, True, "two"),
        *(_chunk(t, 1, "1", "private zebra", postgres=postgres) for t in chunk_tables),
        *(_chunk(t, 2, "NULL", "shared zebra", postgres=postgres) for t in chunk_tables),
        "INSERT INTO api_keys (user_id, name, prefix, key_hash, created_at) VALUES "
        f"(1, 'k', 'sk-abc', 'hash', '{NOW}')",
    )

    await asyncio.to_thread(command.upgrade, empty_database, MIGRATION.revision)

    rows = await _sql(
        empty_database,
        "SELECT collection_scoped FROM api_keys",
        "SELECT count(*) FROM documents WHERE collection_id IS NOT NULL",
        # The same content as user 1's private document, now in a collection: allowed.
        f"INSERT INTO collections (name, deleting, created_at, updated_at) "
        f"VALUES ('c', false, '{NOW}', '{NOW}')",
        "INSERT INTO documents (id, owner_id, shared, collection_id, title, content_type, content, "
        "content_hash, status, chunks, indexed_chunks, created_at, updated_at) VALUES "
        f"(3, 1, false, 1, 't', 'text/plain', 'c', 'one', 'ready', 1, 1, '{NOW}', '{NOW}')",
    )
    assert [tuple(r) for r in rows[0]] == [(False,)]
    assert rows[1][0][0] == 0
    engine = create_engine(make_settings(empty_database.attributes["database_url"]))
    try:
        sessions = create_sessionmaker(engine)
        lexical = LexicalIndex(sessions)
        store = LocalVectorStore(sessions)
        seen = {}
        for user in (1, 2):
            visibility = Visibility.of_user(user)
            async with sessions() as session:
                documents = await DocumentRepository(session).visible_to(visibility)
            hits = await lexical.search("zebra", top_k=5, visibility=visibility)
            vectors = await store.query(VECTOR, top_k=5, visibility=visibility)
            seen[user] = (
                {d.id for d in documents},
                {h.document_id for h in hits},
                {c.document_id for c in vectors},
            )
    finally:
        await engine.dispose()
    assert seen[1] == ({1, 2}, {1, 2}, {1, 2})
    assert seen[2] == ({2}, {2}, {2})
