# ruff: noqa: S608 - the SQL here is built from the test's own constants
"""Migration 0007 on a database with chunks: the lexical index covers them at once."""

from __future__ import annotations

import asyncio
from importlib import import_module

from alembic import command
from alembic.config import Config

from app.core.db import create_engine, create_sessionmaker
from app.rag.lexical import LexicalIndex
from app.rag.protocols import Visibility
from tests.conftest import make_settings
from tests.security.test_migration_0003 import NOW, _sql
from tests.test_migrations import empty_database  # noqa: F401 - fixture

MIGRATION = import_module("migrations.versions.2026-12-01_lexical_index")


def _document(doc_id: int, owner: int, shared: bool, digest: str) -> str:
    flag = "true" if shared else "false"
    return (
        "INSERT INTO documents (id, owner_id, shared, title, content_type, content, "
        "content_hash, status, chunks, indexed_chunks, created_at, updated_at) VALUES "
        f"({doc_id}, {owner}, {flag}, 't', 'text/plain', 'c', '{digest}', 'ready', 1, 1, "
        f"'{NOW}', '{NOW}')"
    )


def _vector(seq: int, doc_id: int, owner: str, text: str) -> str:
    return (
        "INSERT INTO vector_entries (seq, chunk_id, document_id, owner_id, title, text, "
        f"embedding) VALUES ({seq}, 'doc{doc_id}-{seq}', {doc_id}, {owner}, 't', '{text}', '')"
    )


async def test_upgrade_indexes_chunks_already_stored(
    empty_database: Config,  # noqa: F811
) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, MIGRATION.down_revision)
    await _sql(
        empty_database,
        "INSERT INTO users (email, username, password_hash, is_active, is_admin, created_at)"
        f" VALUES ('a@x.io', 'a', 'h', true, false, '{NOW}')",
        _document(1, 1, False, "one"),
        _document(2, 1, True, "two"),
        _vector(1, 1, "1", "Error E1042 means the disk quota is exhausted."),
        _vector(2, 2, "NULL", "Raise work_mem when sorts spill to disk."),
    )

    await asyncio.to_thread(command.upgrade, empty_database, "0007")
    # Today's queries read the columns 0008 adds (collections), which keeps every row's meaning.
    await asyncio.to_thread(command.upgrade, empty_database, "0008")

    engine = create_engine(make_settings(empty_database.attributes["database_url"]))
    try:
        index = LexicalIndex(create_sessionmaker(engine))
        private = await index.search("E1042", top_k=3, visibility=Visibility.of_user(1))
        shared = await index.search("work_mem", top_k=3, visibility=Visibility.of_user(2))
        hidden = await index.search("E1042", top_k=3, visibility=Visibility.of_user(2))
    finally:
        await engine.dispose()
    assert [hit.id for hit in private] == ["doc1-1"]
    assert [hit.id for hit in shared] == ["doc2-2"]
    assert hidden == []
