"""Durability under a crash: chat load against `chatbot serve`, SIGKILL of the server's own pid
mid-load, a restart on the same database, and every turn acknowledged with 200 before the kill
is in the history exactly once, with its answer. SQLite runs with the app's pragmas (WAL,
synchronous=NORMAL: a commit survives the process, not the machine); PostgreSQL when
TEST_DATABASE_URL points at one (in a database of this test's own, `<name>_durability`).
Bounded: 8 clients on 127.0.0.1, killed after 40 acknowledged turns or 20 s."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.perf.concurrency import app_env
from bench.servers import Server, start_app, start_module
from tests.conftest import PG_URL

CLIENTS = 8
ACKED_BEFORE_KILL = 40
LOAD_SECONDS = 20


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_module(
        "bench.perf.fakes", tmp_path_factory.mktemp("fakes"), "--llm-delay", "0.02"
    )
    yield server
    server.stop()


async def _fresh_postgres(url: str) -> str:
    import asyncpg  # type: ignore[import-untyped]

    base, _, name = url.rpartition("/")
    own = f"{name}_durability"
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{own}"')
    finally:
        await conn.close()
    return f"{base}/{own}"


@pytest.fixture
async def durable_url(tmp_path: Path) -> AsyncIterator[str]:
    if PG_URL:
        yield await _fresh_postgres(PG_URL)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'durable.db'}"


async def _account(client: httpx.AsyncClient, n: int) -> dict[str, str]:
    email, password = f"durable{n}@example.com", "durable password 1"
    body = {"email": email, "username": f"d{n}", "password": password}
    (await client.post("/api/signup/", json=body)).raise_for_status()
    login = await client.post("/api/login/", json={"email": email, "password": password})
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access']}"}


async def _chat_until_killed(
    base: str,
    headers: dict[str, str],
    n: int,
    acked: list[str],
    stop: asyncio.Event,
    on_ack: Callable[[], None],
) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        i = 0
        while not stop.is_set():
            message = f"durability turn {n}-{i}"
            i += 1
            try:
                response = await client.post("/api/chat/", json={"message": message})
            except httpx.HTTPError:
                return  # the server is gone: this turn was never acknowledged
            if response.status_code == 200:
                acked.append(message)
                on_ack()


async def test_kill_mid_load_every_acknowledged_turn_is_stored_once(
    fakes: Server, durable_url: str, tmp_path: Path
) -> None:
    env = app_env(fakes.base)
    server = await asyncio.to_thread(start_app, durable_url, tmp_path, env)
    acked: dict[int, list[str]] = {n: [] for n in range(CLIENTS)}
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            headers = [await _account(client, n) for n in range(CLIENTS)]
        stop, enough = asyncio.Event(), asyncio.Event()

        def on_ack() -> None:
            if sum(map(len, acked.values())) >= ACKED_BEFORE_KILL:
                enough.set()

        load = [
            asyncio.create_task(
                _chat_until_killed(server.base, headers[n], n, acked[n], stop, on_ack)
            )
            for n in range(CLIENTS)
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout=LOAD_SECONDS)
        server.process.send_signal(signal.SIGKILL)  # mid-load: requests are in flight
        stop.set()
        await asyncio.wait_for(asyncio.gather(*load), timeout=30)
    finally:
        server.stop(signal.SIGKILL)
    assert server.process.returncode == -signal.SIGKILL
    assert sum(map(len, acked.values())) >= CLIENTS  # the load really ran

    restarted = await asyncio.to_thread(start_app, durable_url, tmp_path, env)
    try:
        async with httpx.AsyncClient(base_url=restarted.base, timeout=30) as client:
            for n in range(CLIENTS):
                history = await client.get("/api/chat-history/?limit=500", headers=headers[n])
                history.raise_for_status()
                messages = history.json()
                questions = [m["content"] for m in messages if m["role"] == "user"]
                for message in acked[n]:
                    assert questions.count(message) == 1, message
                    at = next(i for i, m in enumerate(messages) if m["content"] == message)
                    assert messages[at + 1]["role"] == "bot", message  # its answer, stored
                assert len(questions) == len(set(questions))  # nothing stored twice
    finally:
        restarted.stop()
