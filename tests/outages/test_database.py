"""Database outages are 503s with Retry-After, never 500s or hangs, and recovery needs no
restart (issue 9). The PostgreSQL tests stop and start a cluster of their own."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.api.state import State
from app.core.db import create_engine
from app.main import create_app
from app.models import Base
from app.testing import running_app
from tests.conftest import make_settings, new_user
from tests.outages.conftest import PrivatePostgres

# Bounds against a hang, not timings: each request must come back well within them.
NO_HANG_SECONDS = 20


async def _fresh_schema(url: str) -> None:
    engine = create_engine(make_settings(url))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


@pytest.fixture
async def pg_app(
    private_postgres: PrivatePostgres,
) -> AsyncIterator[tuple[httpx.AsyncClient, State, PrivatePostgres]]:
    await _fresh_schema(private_postgres.url)
    settings = make_settings(
        private_postgres.url,
        database_connect_timeout_seconds=1,
        database_statement_timeout_seconds=1,
        database_pool_timeout_seconds=2,
        # These tests are about each request's own bounds and an immediate recovery; the
        # circuit breaker, which refuses connects for a while, has tests of its own.
        database_breaker_failures=0,
    )
    async with running_app(create_app(settings), raise_app_exceptions=False) as (client, state):
        yield client, state, private_postgres
    if not _listening(private_postgres.port):
        private_postgres.start()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def _get(client: httpx.AsyncClient, path: str, **kwargs: Any) -> httpx.Response:
    async with asyncio.timeout(NO_HANG_SECONDS):
        return await client.get(path, **kwargs)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "database_unavailable"
    assert int(response.headers["retry-after"]) >= 1


async def test_stopped_postgres_is_503_and_recovers_without_restart(
    pg_app: tuple[httpx.AsyncClient, State, PrivatePostgres],
) -> None:
    client, _, cluster = pg_app
    headers = await new_user(client)
    cluster.stop()
    cluster.wait_down()

    _assert_unavailable(await _get(client, "/api/me/", headers=headers))
    _assert_unavailable(await _get(client, "/health"))
    async with asyncio.timeout(NO_HANG_SECONDS):
        chat = await client.post("/api/chat/", json={"message": "hello"}, headers=headers)
    _assert_unavailable(chat)

    cluster.start()
    assert (await _get(client, "/api/me/", headers=headers)).status_code == 200
    assert (await _get(client, "/health")).status_code == 200


async def test_black_holed_postgres_is_503_not_a_hang(
    pg_app: tuple[httpx.AsyncClient, State, PrivatePostgres],
) -> None:
    """Reproduced: requests hung past 45 s. Here the port accepts TCP and never answers."""
    client, _, cluster = pg_app
    headers = await new_user(client)
    cluster.stop()
    cluster.wait_down()
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", cluster.port))
    hole.listen(64)  # the kernel completes handshakes; nobody ever reads
    try:
        _assert_unavailable(await _get(client, "/api/me/", headers=headers))
        _assert_unavailable(await _get(client, "/health"))
    finally:
        hole.close()
    cluster.start()
    assert (await _get(client, "/api/me/", headers=headers)).status_code == 200


async def test_statement_over_the_timeout_is_503(
    pg_app: tuple[httpx.AsyncClient, State, PrivatePostgres],
) -> None:
    client, _, cluster = pg_app
    headers = await new_user(client)
    blocker = create_engine(make_settings(cluster.url))
    try:
        async with blocker.connect() as conn:
            await conn.execute(text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
            _assert_unavailable(await _get(client, "/api/me/", headers=headers))
            await conn.rollback()
    finally:
        await blocker.dispose()
    assert (await _get(client, "/api/me/", headers=headers)).status_code == 200


async def test_sqlite_locked_past_busy_timeout_is_503(tmp_path: Path) -> None:
    """Reproduced: "database is locked" was a 500 after 15 s."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}"
    await _fresh_schema(url)
    settings = make_settings(url, sqlite_busy_timeout_ms=200)
    async with running_app(create_app(settings), raise_app_exceptions=False) as (client, _):
        holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            signup = {"email": "ada@example.com", "username": "ada", "password": "correct horse 1"}
            async with asyncio.timeout(NO_HANG_SECONDS):
                response = await client.post("/api/signup/", json=signup)
            _assert_unavailable(response)
            holder.execute("ROLLBACK")
        finally:
            holder.close()
        async with asyncio.timeout(NO_HANG_SECONDS):
            assert (await client.post("/api/signup/", json=signup)).status_code == 201
