"""Resident memory of `chatbot serve`: after a warm-up of 200 turns ("idle"), then after
`--turns` more (the issue asks 10,000), 8 concurrent clients; with the fake remote backends
(no local model) and with the embedded defaults (MiniLM, local store, extractive answers).
Goal: growth <= 10 %.

    .venv/bin/python -m bench.perf.memory [--turns 10000] [--modes remote local] [--json out]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import documents
from bench.harness import machine
from bench.perf.concurrency import app_env
from bench.perf.turns import EMBEDDED, QUESTIONS
from bench.servers import running, signup, start_app, start_module

GOAL = 0.10
CLIENTS = 8


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def turns(base: str, headers: list[dict[str, str]], count: int) -> int:
    failed = 0
    per_client = count // len(headers)

    async def client(h: dict[str, str]) -> None:
        nonlocal failed
        async with httpx.AsyncClient(base_url=base, headers=h, timeout=60) as http:
            for i in range(per_client):
                response = await http.post(
                    "/api/chat/", json={"message": f"{QUESTIONS[i % 4]} ({i})"}
                )
                failed += response.status_code != 200

    await asyncio.gather(*(client(h) for h in headers))
    return failed


def measure(mode: str, count: int, workdir: Path) -> dict[str, Any]:
    with running([start_module("bench.perf.fakes", workdir, "--llm-delay", "0")]) as (fakes,):
        env = app_env(fakes.base) if mode == "remote" else EMBEDDED
        db = f"sqlite+aiosqlite:///{workdir}/memory-{mode}.db"
        with running([start_app(db, workdir, env)]) as (app,):
            headers = [signup(app.base, f"mem{n}@example.com") for n in range(CLIENTS)]
            content = "\n\n".join(t for _, t in documents(4, paragraphs=3))
            httpx.post(
                f"{app.base}/api/documents/",
                headers=headers[0],
                json={"title": "Handbook", "content": content},
                timeout=120,
            ).raise_for_status()
            failed = asyncio.run(turns(app.base, headers, 200))
            idle = rss_mb(app.pid)
            failed += asyncio.run(turns(app.base, headers, count))
            after = rss_mb(app.pid)
    return {
        "mode": mode,
        "turns": count,
        "idle_rss_mb": idle,
        "after_rss_mb": after,
        "growth": after / idle - 1,
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--modes", nargs="+", default=["remote", "local"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            r = measure(mode, args.turns, Path(tmp))
            results.append(r)
            print(
                f"{mode:6}: RSS {r['idle_rss_mb']:.0f} MiB after 200 turns, "
                f"{r['after_rss_mb']:.0f} MiB after {r['turns']} more: "
                f"{r['growth'] * 100:+.1f} % (goal <= {GOAL * 100:.0f} %); failed {r['failed']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
