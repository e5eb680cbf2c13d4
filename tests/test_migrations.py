"""Alembic migrations against the models, on the test database (SQLite, or PostgreSQL when
TEST_DATABASE_URL is set). env.py calls `asyncio.run`, so alembic runs in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from app.cli import alembic_config
from app.core.db import create_engine
from app.models import Base
from app.rag.lexical import FTS_SHADOW_TABLES, is_index_object
from tests.conftest import make_settings

MODEL_TABLES = set(Base.metadata.tables)


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
async def empty_database(database_url: str) -> AsyncIterator[Config]:
    """An alembic config on a database without tables; the full schema is back afterwards,
    because on PostgreSQL the following tests share this database."""
    await _reset_schema(database_url, create=False)
    config = alembic_config(make_settings(database_url))
    config.attributes["configure_logging"] = False
    yield config
    await _reset_schema(database_url, create=True)


async def _inspect(config: Config, check: Any) -> Any:
    engine = create_engine(make_settings(config.attributes["database_url"]))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(check)
    finally:
        await engine.dispose()


async def table_names(config: Config) -> set[str]:
    # The lexical index's FTS5 tables are made by DDL outside the models (app.rag.lexical).
    names = set(await _inspect(config, lambda conn: inspect(conn).get_table_names()))
    return names - FTS_SHADOW_TABLES


def _include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    parent = getattr(getattr(obj, "table", None), "name", None)
    return not is_index_object(name, type_, parent)


def _model_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "include_object": _include}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_head_on_empty_database_matches_models(empty_database: Config) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, "head")

    assert await table_names(empty_database) == {*MODEL_TABLES, "alembic_version"}
    assert await _inspect(empty_database, _model_diff) == []


async def test_downgrade_base_after_upgrade_removes_every_table(empty_database: Config) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, "head")

    await asyncio.to_thread(command.downgrade, empty_database, "base")

    # alembic keeps its (now empty) version table.
    assert await table_names(empty_database) - {"alembic_version"} == set()


async def test_upgrade_after_downgrade_base_restores_schema(empty_database: Config) -> None:
    await asyncio.to_thread(command.upgrade, empty_database, "head")
    await asyncio.to_thread(command.downgrade, empty_database, "base")

    await asyncio.to_thread(command.upgrade, empty_database, "head")

    assert await _inspect(empty_database, _model_diff) == []
