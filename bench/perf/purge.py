"""The retention purge of `--rows` expired messages (the issue asks 1,000,000) while 8 clients
chat against `chatbot serve` (fake remote backends). The purge runs in this process through
`purge_old_messages` with a session factory that times every transaction: the longest one is
the longest write lock held. Chat p99 during the purge against p99 just before (goal <= 2x).

    .venv/bin/python -m bench.perf.purge [--rows 1000000] [--databases sqlite postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import insert

from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.chat.retention import purge_old_messages
from app.core.db import create_engine, create_sessionmaker, utcnow
from bench.harness import bench_settings, machine
from bench.perf.concurrency import app_env
from bench.servers import (
    PG_URL,
    postgres_available,
    reset_postgres,
    running,
    signup,
    start_app,
    start_module,
)

GOAL = 2.0
CLIENTS = 8
BATCH = 1_000  # CLEANUP_BATCH_SIZE's default


async def seed_expired(url: str, user_id: int, rows: int) -> None:
    engine = create_engine(bench_settings(url))
    sessions = create_sessionmaker(engine)
    old = utcnow() - timedelta(days=90)
    try:
        async with sessions.begin() as session:
            conversation = Conversation(
                owner_id=user_id, title="old", created_at=old, updated_at=old
            )
            session.add(conversation)
            await session.flush()
            conversation_id = conversation.id
        for start in range(0, rows, 20_000):
            async with sessions.begin() as session:
                await session.execute(
                    insert(ChatMessage),
                    [
                        {
                            "user_id": user_id,
                            "conversation_id": conversation_id,
                            "role": "user",
                            "content": f"old message {n}",
                            "timestamp": old,
                            "interrupted": False,
                        }
                        for n in range(start, min(rows, start + 20_000))
                    ],
                )
    finally:
        await engine.dispose()


class TimedSessions:
    """`async_sessionmaker`'s `begin()` only, recording how long each transaction lasted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.durations: list[float] = []

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Any]:
        start = time.perf_counter()
        try:
            async with self.inner.begin() as session:
                yield session
        finally:
            self.durations.append(time.perf_counter() - start)


async def chat_load(
    base: str, headers: list[dict[str, str]], stop: asyncio.Event, latencies: list[float]
) -> None:
    async def client(h: dict[str, str]) -> None:
        async with httpx.AsyncClient(base_url=base, headers=h, timeout=120) as http:
            i = 0
            while not stop.is_set():
                start = time.perf_counter()
                response = await http.post("/api/chat/", json={"message": f"question {i}"})
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)
                i += 1

    await asyncio.gather(*(client(h) for h in headers))


def p99_ms(values: list[float]) -> float:
    return float(np.percentile(np.asarray(values) * 1e3, 99))


async def phases(
    base: str, url: str, headers: list[dict[str, str]], before_s: float
) -> dict[str, Any]:
    before: list[float] = []
    stop = asyncio.Event()
    load = asyncio.create_task(chat_load(base, headers, stop, before))
    await asyncio.sleep(before_s)
    stop.set()
    await load
    during: list[float] = []
    stop = asyncio.Event()
    engine = create_engine(bench_settings(url))
    timed = TimedSessions(create_sessionmaker(engine))
    load = asyncio.create_task(chat_load(base, headers, stop, during))
    start = time.perf_counter()
    deleted = await purge_old_messages(timed, retention_days=30, batch_size=BATCH)  # type: ignore[arg-type]
    purge_s = time.perf_counter() - start
    stop.set()
    await load
    await engine.dispose()
    return {
        "deleted": deleted,
        "purge_s": purge_s,
        "transactions": len(timed.durations),
        "longest_transaction_ms": max(timed.durations) * 1e3,
        "median_transaction_ms": statistics.median(timed.durations) * 1e3,
        "chat_p99_before_ms": p99_ms(before),
        "chat_p99_during_ms": p99_ms(during),
        "chat_p50_before_ms": statistics.median(before) * 1e3,
        "chat_p50_during_ms": statistics.median(during) * 1e3,
        "turns_during": len(during),
        "ratio": p99_ms(during) / p99_ms(before),
    }


def measure(name: str, url: str, rows: int, workdir: Path) -> dict[str, Any]:
    fakes_server = start_module("bench.perf.fakes", workdir, "--llm-delay", "0")
    with (
        running([fakes_server]),
        running([start_app(url, workdir, app_env(fakes_server.base))]) as (app,),
    ):
        headers = [signup(app.base, f"purge{n}@example.com") for n in range(CLIENTS)]
        owner = httpx.get(f"{app.base}/api/me/", headers=headers[0], timeout=30).json()
        start = time.perf_counter()
        asyncio.run(seed_expired(url, owner["id"], rows))
        seeded = time.perf_counter() - start
        result = asyncio.run(phases(app.base, url, headers, before_s=15))
    return {"database": name, "rows": rows, "seed_s": seeded, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.databases:
            if name == "postgresql":
                if not postgres_available():
                    print("PostgreSQL not reachable: skipped")
                    continue
                asyncio.run(reset_postgres())
                url = PG_URL
            else:
                url = f"sqlite+aiosqlite:///{tmp}/purge.db"
            r = measure(name, url, args.rows, Path(tmp))
            results.append(r)
            print(
                f"{name:10}: purged {r['deleted']} in {r['purge_s']:.1f} s ({r['transactions']} "
                f"transactions, longest {r['longest_transaction_ms']:.0f} ms, median "
                f"{r['median_transaction_ms']:.0f}); chat p99 {r['chat_p99_before_ms']:.0f} ms "
                f"before, {r['chat_p99_during_ms']:.0f} ms during = {r['ratio']:.2f}x (goal <= "
                f"{GOAL:g}); p50 {r['chat_p50_before_ms']:.0f} -> {r['chat_p50_during_ms']:.0f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
