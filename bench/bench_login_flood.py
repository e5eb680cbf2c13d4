"""Chat latency during a flood of wrong-password logins (issue 9, "fair sharing").

Measured on the seed: 120 concurrent wrong-password logins made a 75 ms chat take 33.5 s,
because argon2, the embedder and PDF parsing shared the default thread pool. Now hashing has a
pool of its own (PASSWORD_HASH_WORKERS). Same run, alternating rounds:

- idle: chat p50 with nothing else running (the baseline);
- flood: chat p50 while 120 wrong-password logins run at once, hashing in its own pool;
- shared pool: the same flood with hashing moved back onto the default executor (the seed's
  design), to show what the pool buys.

Production argon2 (t=3, 64 MiB), the embedded defaults (local MiniLM, local store, extractive
answers), rate limits off (they would turn most of the flood into 429s: measured separately in
tests/ops). Goal: flood p50 <= 3x idle p50.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.auth.security import PasswordHasher
from app.core.config import Settings
from app.main import create_app
from app.testing import running_app
from bench.harness import Goal, Result, cli, fresh_database

DEFAULTS = Settings.model_fields
PASSWORD = "correct horse battery staple"
FLOOD = 120
HANDBOOK = (
    "Employees receive 25 days of paid annual leave. Unused leave can be carried over until "
    "the end of March. The office opens at 8am on weekdays."
)


async def chat_latencies(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = await client.post(
            "/api/chat/", json={"message": "How many days of leave do I get?"}, headers=headers
        )
        assert response.status_code == 200, response.text
        out.append(time.perf_counter() - start)
    return out


async def during_flood(
    client: httpx.AsyncClient, headers: dict[str, str], n: int
) -> tuple[list[float], list[int]]:
    async def wrong_login() -> int:
        response = await client.post(
            "/api/login/", json={"email": "bench@example.com", "password": "wrong password!"}
        )
        return response.status_code

    flood = [asyncio.create_task(wrong_login()) for _ in range(FLOOD)]
    await asyncio.sleep(0.05)  # the flood is queued before the chats start
    latencies = await chat_latencies(client, headers, n)
    statuses = await asyncio.gather(*flood)
    return latencies, statuses


def shared_pool(hasher: PasswordHasher) -> Any:
    """The seed's design: hashing on the loop's default executor, beside everything else."""

    async def verify(password: str, stored: str) -> bool:
        return await asyncio.to_thread(hasher.verify_sync, password, stored)

    return verify


async def run(quick: bool) -> Result:
    rounds, chats = (2, 5) if quick else (3, 10)
    samples: dict[str, list[float]] = {"idle": [], "flood": [], "shared": []}
    statuses: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            fresh_database(
                Path(tmp) / "flood.db",
                password_hash_time_cost=DEFAULTS["password_hash_time_cost"].default,
                password_hash_memory_kib=DEFAULTS["password_hash_memory_kib"].default,
                password_hash_max_waiting=FLOOD,
                rate_limit_enabled=False,
            ) as db,
            running_app(create_app(db.settings)) as (client, state),
        ):
            account = {"email": "bench@example.com", "username": "b", "password": PASSWORD}
            assert (await client.post("/api/signup/", json=account)).status_code == 201
            token = (
                await client.post(
                    "/api/login/", json={"email": account["email"], "password": PASSWORD}
                )
            ).json()["access"]
            headers = {"Authorization": f"Bearer {token}"}
            body = {"title": "Handbook", "content": HANDBOOK}
            assert (
                await client.post("/api/documents/", json=body, headers=headers)
            ).status_code == 201
            await chat_latencies(client, headers, 3)  # warm-up
            hasher: PasswordHasher = state["hasher"]
            own_pool = hasher.verify
            for _ in range(rounds):  # alternating, so load drifts hit every mode alike
                samples["idle"].append(
                    statistics.median(await chat_latencies(client, headers, chats))
                )
                latencies, codes = await during_flood(client, headers, chats)
                samples["flood"].append(statistics.median(latencies))
                statuses += codes
                hasher.verify = shared_pool(hasher)  # type: ignore[method-assign]
                latencies, codes = await during_flood(client, headers, chats)
                hasher.verify = own_pool  # type: ignore[method-assign]
                samples["shared"].append(statistics.median(latencies))
    med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    spread = {k: (min(v) * 1e3, max(v) * 1e3) for k, v in samples.items()}
    ratio = med["flood"] / med["idle"]
    result = Result(
        name="login_flood",
        description=f"chat p50 during {FLOOD} concurrent wrong-password logins",
        params={"rounds": rounds, "chats_per_round": chats, "argon2": "t=3, 64 MiB, p=1"},
        metrics={
            "chat_p50_idle_ms": med["idle"],
            "chat_p50_flood_own_pool_ms": med["flood"],
            "chat_p50_flood_shared_pool_ms": med["shared"],
            "flood_over_idle": ratio,
        },
    )
    for key, label in (
        ("idle", "chat p50, idle"),
        ("flood", "chat p50, flood, hashing in its own pool"),
        ("shared", "chat p50, flood, hashing in the default pool"),
    ):
        low, high = spread[key]
        result.row(label, f"{med[key]:.1f} ms (rounds {low:.1f}-{high:.1f})")
    result.row("login statuses during the floods", str(sorted(set(statuses))))
    result.headline("chat p50 during the flood vs idle", med["flood"], med["idle"], "ms")
    result.goals.append(Goal("flood / idle chat p50", ratio, "<= 3", ratio <= 3))
    result.notes.append(f"median of {rounds} alternating rounds of {chats} serial chats each")
    return result


def main() -> None:
    cli(run)


if __name__ == "__main__":
    main()
