"""Shared fixtures. The database is SQLite by default; set TEST_DATABASE_URL to run the whole
suite on PostgreSQL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.state import State
from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker, utcnow
from app.documents.models import Document, DocumentStatus
from app.main import create_app
from app.models import Base
from app.testing import isolated_settings, running_app

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
_pg_schema_ready = False


def pytest_configure(config: pytest.Config) -> None:
    # The defaults under CHATBOT_HOME (chatbot.db, .secret_key, .env) would otherwise be the
    # checkout's, in this process and in every `chatbot` subprocess a test starts.
    home = Path(tempfile.mkdtemp(prefix="chatbot-home-"))
    os.environ["CHATBOT_HOME"] = str(home)
    config.add_cleanup(lambda: shutil.rmtree(home, ignore_errors=True))


# Fixtures through which a test reaches the database TEST_DATABASE_URL names. With
# TEST_DATABASE_ONLY=1 (make test-pg) only the tests that use one of them run: the others
# (pure functions, subprocesses and browsers on databases of their own) would repeat the
# SQLite pass exactly.
DATABASE_FIXTURES = frozenset(
    {"database_url", "sessions", "durable_url", "live_server", "hf_server"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not (PG_URL and os.environ.get("TEST_DATABASE_ONLY") == "1"):
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        uses_database = bool(names & DATABASE_FIXTURES) or item.get_closest_marker("database")
        (selected if uses_database else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def make_settings(database_url: str, **overrides: Any) -> Settings:
    return isolated_settings(database_url, TEST_SECRET, **overrides)


async def _reset_database(url: str) -> None:
    global _pg_schema_ready
    engine = create_engine(make_settings(url))
    async with engine.begin() as conn:
        if url.startswith("postgresql") and _pg_schema_ready:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            if url.startswith("postgresql"):
                # The whole schema, whatever an earlier run or another checkout left in it
                # (drop_all fails on tables this checkout's models do not know).
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
            else:
                await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
            _pg_schema_ready = url.startswith("postgresql")
    await engine.dispose()


@pytest.fixture
async def database_url(tmp_path: Path) -> str:
    url = PG_URL or f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    await _reset_database(url)
    return url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(make_settings(database_url))
    yield create_sessionmaker(engine)
    await engine.dispose()


AppFactory = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]]


@pytest.fixture
def app_factory(database_url: str) -> AppFactory:
    """`async with app_factory(**setting_overrides) as (client, state): ...`"""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]:
        return running_app(create_app(make_settings(database_url, **overrides)))

    return factory


@pytest.fixture
async def running(app_factory: AppFactory) -> AsyncIterator[tuple[httpx.AsyncClient, State]]:
    async with app_factory() as pair:
        yield pair


@pytest.fixture
def client(running: tuple[httpx.AsyncClient, State]) -> httpx.AsyncClient:
    return running[0]


@pytest.fixture
def state(running: tuple[httpx.AsyncClient, State]) -> State:
    return running[1]


async def signup(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = "correct horse 1"
) -> dict[str, Any]:
    response = await client.post(
        "/api/signup/", json={"email": email, "username": email.split("@")[0], "password": password}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login_headers(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = "correct horse 1"
) -> dict[str, str]:
    response = await client.post("/api/login/", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access']}"}


async def new_user(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, str]:
    """Sign up and log in; the Authorization header of the new user."""
    await signup(client, email)
    return await login_headers(client, email)


async def make_admin(state: State, email: str) -> None:
    async with state["sessions"].begin() as session:
        await session.execute(
            text("UPDATE users SET is_admin = :yes WHERE email = :email"),
            {"yes": True, "email": email},
        )


async def add_placeholder_documents(
    sessions: async_sessionmaker[AsyncSession], ids: Iterable[int]
) -> None:
    """Shared, ready documents with these ids, for tests that write vectors directly: a
    vector belongs to a document (a foreign key)."""
    now = utcnow()
    async with sessions.begin() as session:
        session.add_all(
            Document(
                id=n,
                owner_id=None,
                shared=True,
                title=f"doc {n}",
                content_type="text/plain",
                content=f"text {n}",
                content_hash=f"{n:064d}",
                status=DocumentStatus.READY,
                chunks=1,
                created_at=now,
                updated_at=now,
            )
            for n in ids
        )
        if session.get_bind().dialect.name == "postgresql":
            # Explicit ids leave the sequence behind; documents added later need the next one.
            await session.execute(
                text("SELECT setval(pg_get_serial_sequence('documents', 'id'), 1000)")
            )
