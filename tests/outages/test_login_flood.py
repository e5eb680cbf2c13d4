"""A login flood cannot starve chat: hashing has a pool of its own, and a login waiting for it
holds no database connection (issue 9, "fair sharing")."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.auth.security import PasswordHasher
from tests.conftest import AppFactory, new_user

FLOOD = 40  # more than the SQLite pool's 5 + 10 overflow connections


async def test_login_flood_neither_drains_the_pool_nor_blocks_chat(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_factory(database_pool_timeout_seconds=1, password_hash_max_waiting=FLOOD) as (
        client,
        state,
    ):
        headers = await new_user(client)
        hasher: PasswordHasher = state["hasher"]
        verify = hasher.verify_sync

        def slow_verify(password: str, stored: str) -> bool:
            time.sleep(0.1)  # a production-cost argon2 verification
            return verify(password, stored)

        monkeypatch.setattr(hasher, "verify_sync", slow_verify)

        async def wrong_login() -> str:
            body = {"email": "ada@example.com", "password": "not the password"}
            response = await client.post("/api/login/", json=body)
            return f"{response.status_code} {response.json()['error']}"

        flood = [asyncio.create_task(wrong_login()) for _ in range(FLOOD)]
        await asyncio.sleep(0.05)
        # The flood needs FLOOD * 0.1 s = 4 s of hashing, longer than the 1 s pool timeout.
        chats = [
            await client.post("/api/chat/", json={"message": "hello?"}, headers=headers)
            for _ in range(3)
        ]
        statuses = await asyncio.gather(*flood)

        assert [c.status_code for c in chats] == [200, 200, 200]
        # Every flood login is refused, and answered: holding connections while hashing, 16 of
        # these 40 timed out waiting for the pool (503). A burst of 40 at once can still find
        # the pool full for a moment (seen once in CI), hence the small allowance.
        assert set(statuses) <= {"401 invalid_credentials", "503 database_unavailable"}
        assert statuses.count("401 invalid_credentials") >= FLOOD - 3


async def test_hash_queue_beyond_its_bound_is_503_at_once(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_factory(password_hash_max_waiting=2) as (client, state):
        await new_user(client)
        hasher: PasswordHasher = state["hasher"]
        verify = hasher.verify_sync

        def slow_verify(password: str, stored: str) -> bool:
            time.sleep(0.2)
            return verify(password, stored)

        monkeypatch.setattr(hasher, "verify_sync", slow_verify)
        body = {"email": "ada@example.com", "password": "not the password"}
        responses: list[httpx.Response] = await asyncio.gather(
            *(client.post("/api/login/", json=body) for _ in range(8))
        )

        codes = sorted(r.status_code for r in responses)
        assert codes.count(401) == 3  # one hashing, two waiting
        assert codes.count(503) == 5
        busy = next(r for r in responses if r.status_code == 503)
        assert busy.json()["error"] == "busy"
        assert busy.headers["retry-after"] == "1"
