"""The one-hop aiosqlite adapter (app/core/sqlite.py): one call to the connection's thread per
statement, no empty COMMIT/ROLLBACK, and the same results and transactions as the stock
adapter. Always on a SQLite file of its own, whatever TEST_DATABASE_URL says."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.models import User
from app.core.db import Base, create_engine, create_sessionmaker
from tests.conftest import make_settings


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
def sqlite_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the functions sent to aiosqlite connection threads."""
    sent: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any) -> Any:
        sent.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *a)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return sent


def _user(n: int) -> User:
    return User(email=f"u{n}@example.com", username=f"u{n}", password_hash="x")


async def test_read_on_sqlite_one_hop_per_statement_and_no_empty_rollback(
    sqlite_sessions: async_sessionmaker[AsyncSession], hops: list[str]
) -> None:
    async with sqlite_sessions.begin() as session:
        session.add(_user(1))
    async with sqlite_sessions() as session:  # a connection is pooled and known idle
        await session.get(User, 1)
    hops.clear()
    async with sqlite_sessions() as session:
        found = await session.get(User, 1)
    assert found is not None
    assert found.email == "u1@example.com"
    # The stock adapter sends five: cursor, execute, fetchall, close, then the pool's rollback.
    assert hops == ["_run"]


async def test_uncommitted_write_on_close_is_rolled_back(
    sqlite_sessions: async_sessionmaker[AsyncSession], hops: list[str]
) -> None:
    async with sqlite_sessions() as session:
        session.add(_user(1))
        await session.flush()  # written inside a transaction that is never committed
    assert "rollback" in hops
    async with sqlite_sessions() as session:
        assert (await session.execute(select(func.count(User.id)))).scalar_one() == 0


async def test_failed_statement_in_transaction_rolls_back_and_connection_reusable(
    sqlite_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sqlite_sessions.begin() as session:
        session.add(_user(1))

    async def two_inserts() -> None:
        async with sqlite_sessions.begin() as session:
            await session.execute(
                insert(User).values(email="u2@example.com", username="u2", password_hash="x")
            )
            # Same email: the unique constraint fails the second insert of the transaction.
            await session.execute(
                insert(User).values(email="u1@example.com", username="x", password_hash="x")
            )

    with pytest.raises(IntegrityError):
        await two_inserts()
    async with sqlite_sessions() as session:
        emails = (await session.execute(select(User.email).order_by(User.id))).scalars().all()
    assert emails == ["u1@example.com"]  # u2 went with the failed transaction


async def test_statement_results_rowcount_and_lastrowid_match_sqlite3(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(User).values(email="a@example.com", username="a", password_hash="x")
        )
        assert result.inserted_primary_key == (1,)
        await conn.execute(
            insert(User),
            [
                {"email": f"b{n}@example.com", "username": "b", "password_hash": "x"}
                for n in range(3)
            ],
        )
        changed = await conn.execute(update(User).where(User.username == "b").values(username="c"))
        assert changed.rowcount == 3
        rows = (await conn.execute(text("SELECT id, username FROM users ORDER BY id"))).all()
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "c"), (3, "c"), (4, "c")]
