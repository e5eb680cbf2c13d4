"""`GET /api/chat-history/?limit=100` (100 stored messages), `/health` and `/api/me/` against a
bare FastAPI `/hello` served with the same uvicorn flags: throughput at 32 connections, each
as a ratio to the hello of the same round, and serial latency. SQLite and PostgreSQL; rounds
alternate the order of the paths.

    .venv/bin/python -m bench.perf.history [--rounds 3] [--seconds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.core.db import create_engine, create_sessionmaker, utcnow
from bench.harness import bench_settings, machine
from bench.servers import (
    PG_URL,
    ROOT,
    postgres_available,
    reset_postgres,
    running,
    signup,
    source_tree,
    spread,
    start_app,
    start_module,
    wrk,
)

MESSAGES = 100
GOAL_RATIO = 0.10
GOAL_SERIAL_MS = 1.5


async def seed(database_url: str, user_id: int, count: int = MESSAGES) -> None:
    """`count` messages in one conversation, half of them bot answers with two sources."""
    engine = create_engine(bench_settings(database_url))
    sessions = create_sessionmaker(engine)
    now = utcnow()
    source = {
        "document_id": 1,
        "title": "Handbook",
        "chunk_id": "1:0",
        "score": 0.71,
        "snippet": "Every employee gets 25 days of paid leave per year. " * 4,
    }
    try:
        async with sessions.begin() as session:
            conversation = Conversation(
                owner_id=user_id, title="Leave", created_at=now, updated_at=now
            )
            session.add(conversation)
            await session.flush()
            session.add_all(
                ChatMessage(
                    user_id=user_id,
                    conversation_id=conversation.id,
                    role="user" if n % 2 == 0 else "bot",
                    content=f"Message {n}: how many days of paid leave do I get per year? " * 3,
                    timestamp=now - timedelta(seconds=count - n),
                    sources=None if n % 2 == 0 else [source, {**source, "chunk_id": "1:1"}],
                )
                for n in range(count)
            )
    finally:
        await engine.dispose()


def measure(
    name: str,
    database_url: str,
    hello: str,
    workdir: Path,
    rounds: int,
    seconds: float,
    root: Path = ROOT,
) -> dict[str, Any]:
    with running([start_app(database_url, workdir, root=root)]) as (app,):
        headers = signup(app.base)
        me = httpx.get(f"{app.base}/api/me/", headers=headers, timeout=10).json()
        asyncio.run(seed(database_url, me["id"]))
        history = f"{app.base}/api/chat-history/?limit={MESSAGES}"
        body = httpx.get(history, headers=headers, timeout=10).json()
        assert len(body) == MESSAGES, body
        wrk(history, connections=32, seconds=1, headers=headers)  # warm-up
        wrk(f"{hello}/hello", connections=32, seconds=1)
        urls = {
            "history": history,
            "hello": f"{hello}/hello",
            "health": f"{app.base}/health",
            "me": f"{app.base}/api/me/",
        }
        rps: dict[str, list[float]] = {path: [] for path in urls}
        p50: dict[str, list[float]] = {"history_32": [], "history": [], "health": [], "me": []}
        errors = 0
        for r in range(rounds):
            order = list(urls) if r % 2 == 0 else list(reversed(urls))
            for path in order:
                res = wrk(
                    urls[path],
                    connections=32,
                    seconds=seconds,
                    headers=headers if path != "hello" else {},
                )
                rps[path].append(res.rps)
                errors += res.non_2xx + res.errors
                if path == "history":
                    p50["history_32"].append(res.p50_ms)
            serial = {
                "history": history,
                "health": f"{app.base}/health",
                "me": f"{app.base}/api/me/",
            }
            for key in list(serial) if r % 2 == 0 else list(reversed(serial)):
                res = wrk(
                    serial[key], connections=1, threads=1, seconds=seconds / 2, headers=headers
                )
                p50[key].append(res.p50_ms)
                errors += res.non_2xx + res.errors
    ratios = [h / b for h, b in zip(rps["history"], rps["hello"], strict=True)]
    return {
        "database": name,
        "history_rps": spread(rps["history"]),
        "hello_rps": spread(rps["hello"]),
        "ratio": spread(ratios),
        # The other read paths on the same ladder: each round's req/s over that round's hello.
        "health_rps": spread(rps["health"]),
        "health_ratio": spread([h / b for h, b in zip(rps["health"], rps["hello"], strict=True)]),
        "me_rps": spread(rps["me"]),
        "me_ratio": spread([h / b for h, b in zip(rps["me"], rps["hello"], strict=True)]),
        "history_p50_ms_32": spread(p50["history_32"]),
        "serial_p50_ms": {k: spread(v) for k, v in p50.items() if k != "history_32"},
        "errors": errors,
        "goal_ratio_met": spread(ratios)["median"] >= GOAL_RATIO,
        "goal_serial_met": spread(p50["history"])["median"] <= GOAL_SERIAL_MS,
    }


def summary(result: dict[str, Any]) -> str:
    s = result["serial_p50_ms"]
    return (
        f"{result['code']:8} {result['database']:10} history "
        f"{result['history_rps']['median']:7.0f} req/s "
        f"(p50 {result['history_p50_ms_32']['median']:.1f} ms at 32) / hello "
        f"{result['hello_rps']['median']:7.0f} = ratio {result['ratio']['median']:.3f}"
        f" [{result['ratio']['min']:.3f}-{result['ratio']['max']:.3f}] "
        f"(goal >= {GOAL_RATIO}); /health {result['health_rps']['median']:.0f} req/s = "
        f"{result['health_ratio']['median']:.3f}, /api/me/ {result['me_rps']['median']:.0f} "
        f"req/s = {result['me_ratio']['median']:.3f}; serial p50 history "
        f"{s['history']['median']:.2f} ms, /health {s['health']['median']:.2f}, "
        f"/api/me/ {s['me']['median']:.2f} (goal <= {GOAL_SERIAL_MS}); "
        f"errors {result['errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--before", help="also measure this git ref (e.g. 2e31488), same run")
    args = parser.parse_args(argv)
    info = machine()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        trees = [("HEAD", ROOT)]
        if args.before:
            trees.insert(0, (args.before, source_tree(args.before, workdir)))
        with running([start_module("bench.perf.hello", workdir)]) as (hello,):
            for name in args.databases:
                if name == "postgresql" and not postgres_available():
                    print("PostgreSQL not reachable: skipped")
                    continue
                for code, root in trees:
                    if name == "postgresql":
                        asyncio.run(reset_postgres())
                        url = PG_URL
                    else:
                        url = f"sqlite+aiosqlite:///{workdir}/history-{code}.db"
                    result = measure(
                        name, url, hello.base, workdir, args.rounds, args.seconds, root
                    )
                    result["code"] = code
                    results.append(result)
                    print(summary(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
