"""Concurrent chats under a slow LLM: N users each send one `POST /api/chat/` at the same time;
the LLM (the Hugging Face wire fake) takes `--llm-delay` s per completion, the embedder is the
same fake and the vector store the Pinecone fake, all in one process of their own. Baseline in
the same run, alternating: the same client sending N chat completions straight to the fake.

    .venv/bin/python -m bench.perf.concurrency [--users 100 500] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import machine
from bench.perf.fakes import API_KEY
from bench.servers import (
    BIN,
    PG_URL,
    ROOT,
    postgres_available,
    reset_postgres,
    running,
    source_tree,
    spread,
    start_app,
    start_module,
)

GOAL = 1.3
COMPLETION = {
    "model": "bench",
    "messages": [{"role": "user", "content": "How many days of leave do I get?"}],
    "max_tokens": 64,
}


def app_env(fakes: str) -> dict[str, str]:
    return {
        "EMBEDDING_BACKEND": "huggingface",
        "EMBEDDING_URL": f"{fakes}/embed",
        "LLM_BACKEND": "huggingface",
        "LLM_BASE_URL": f"{fakes}/v1",
        "HUGGINGFACE_API_KEY": "hf_bench",
        "VECTOR_STORE": "pinecone",
        "PINECONE_API_KEY": API_KEY,
        "PINECONE_HOST": fakes,
        # No document is needed: the general fallback still calls the LLM on every turn.
        "RAG_FALLBACK": "general",
    }


async def _burst(send: Any, n: int) -> tuple[float, int]:
    """Seconds from the first send to the last answer, and how many were not 200."""
    start = time.perf_counter()
    statuses = await asyncio.gather(*(send(i) for i in range(n)))
    return time.perf_counter() - start, sum(1 for s in statuses if s != 200)


def _client(n: int) -> httpx.AsyncClient:
    # Fresh connections per burst: a kept-alive one may have been closed by the server's
    # keep-alive timeout (5 s) since the last burst, a ReadError that says nothing of speed.
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n, keepalive_expiry=2)
    return httpx.AsyncClient(limits=limits, timeout=120)


async def fakes_alone(fakes: str, n: int) -> tuple[float, int]:
    async with _client(n) as client:

        async def send(_: int) -> int:
            response = await client.post(f"{fakes}/v1/chat/completions", json=COMPLETION)
            return response.status_code

        return await _burst(send, n)


async def chats(base: str, tokens: list[str]) -> tuple[float, int]:
    async with _client(len(tokens)) as client:

        async def send(i: int) -> int:
            response = await client.post(
                f"{base}/api/chat/",
                json={"message": f"How many days of leave do I get? ({i})"},
                headers={"Authorization": f"Bearer {tokens[i]}"},
            )
            return response.status_code

        return await _burst(send, len(tokens))


async def accounts(base: str, n: int, offset: int) -> list[str]:
    async with _client(16) as client:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> str:
            email = f"user{offset + i}@example.com"
            body = {"email": email, "username": f"u{offset + i}", "password": "bench password 1"}
            async with sem:
                (await client.post(f"{base}/api/signup/", json=body)).raise_for_status()
                login = await client.post(
                    f"{base}/api/login/", json={"email": email, "password": body["password"]}
                )
            login.raise_for_status()
            return str(login.json()["access"])

        return list(await asyncio.gather(*(one(i) for i in range(n))))


def run(
    users: list[int],
    rounds: int,
    delay: float,
    workdir: Path,
    database: str = "sqlite",
    profile: Path | None = None,
    trees: list[tuple[str, Path]] | None = None,
) -> list[dict[str, Any]]:
    """Every tree's server runs at once, each on a database of its own, and each round sends
    the burst to each of them and to the fakes alone, in an order that alternates: the
    baseline and the candidate see the same machine load."""
    trees = trees or [("HEAD", ROOT)]
    results = []
    with running([start_module("bench.perf.fakes", workdir, "--llm-delay", str(delay))]) as (
        fakes,
    ):
        servers = []
        for code, root in trees:
            if database == "postgresql":
                url = PG_URL if len(trees) == 1 else f"{PG_URL}_{code.lower()}"
                asyncio.run(reset_postgres(url))
            else:
                url = f"sqlite+aiosqlite:///{workdir}/concurrency-{code}.db"
            servers.append(start_app(url, workdir, app_env(fakes.base), root=root))
        with running(servers) as apps:
            offset = 0
            for n in users:
                walls: dict[str, list[float]] = {code: [] for code, _ in trees}
                app_cpu: dict[str, list[float]] = {code: [] for code, _ in trees}
                loop_cpu: dict[str, list[float]] = {code: [] for code, _ in trees}
                fakes_cpu: dict[str, list[float]] = {code: [] for code, _ in trees}
                failed: dict[str, int] = {code: 0 for code, _ in trees}
                floors: list[float] = []
                for r in range(rounds):
                    tokens = {}
                    for code, _ in trees:
                        app = apps[[c for c, _ in trees].index(code)]
                        tokens[code] = asyncio.run(accounts(app.base, n, offset))
                    offset += n
                    order = [*(code for code, _ in trees), "fakes"]
                    if r % 2:
                        order.reverse()
                    for which in order:
                        if which == "fakes":
                            wall, bad = asyncio.run(fakes_alone(fakes.base, n))
                            floors.append(wall)
                            continue
                        app = apps[[c for c, _ in trees].index(which)]
                        spy = _py_spy(app.pid, profile) if profile and r == 1 else None
                        before = cpu_seconds(app.pid), cpu_seconds(fakes.pid)
                        loop_before = thread_cpu_seconds(app.pid)
                        wall, bad = asyncio.run(chats(app.base, tokens[which]))
                        app_cpu[which].append((cpu_seconds(app.pid) - before[0]) / n * 1e3)
                        loop_cpu[which].append(
                            (thread_cpu_seconds(app.pid) - loop_before) / n * 1e3
                        )
                        fakes_cpu[which].append((cpu_seconds(fakes.pid) - before[1]) / n * 1e3)
                        if spy is not None:
                            spy.wait(60)
                        walls[which].append(wall)
                        failed[which] += bad
                for code, _ in trees:
                    result: dict[str, Any] = {
                        "code": code,
                        "database": database,
                        "users": n,
                        "llm_delay_s": delay,
                        "chat_wall_s": spread(walls[code]),
                        "fakes_alone_wall_s": spread(floors),
                        "ratio_to_floor": spread([w / delay for w in walls[code]]),
                        "ratio_to_fakes_alone": spread(
                            [w / f for w, f in zip(walls[code], floors, strict=True)]
                        ),
                        # CPU time of the server per turn: what bounds throughput whatever
                        # the machine's load (2 shared cores: the wall figures move with it).
                        "app_cpu_ms_per_turn": spread(app_cpu[code]),
                        # Of which the event loop's thread (the rest: aiosqlite's connection
                        # threads, the default executor).
                        "loop_thread_cpu_ms_per_turn": spread(loop_cpu[code]),
                        "fakes_cpu_ms_per_turn": spread(fakes_cpu[code]),
                        "load_average": os.getloadavg()[0],
                        "failed": failed[code],
                    }
                    results.append(result)
                    print(
                        f"{code:8} {database:10} {n:4} concurrent chats: "
                        f"{result['chat_wall_s']['median']:.2f} s "
                        f"[{min(walls[code]):.2f}-{max(walls[code]):.2f}] = "
                        f"{result['ratio_to_floor']['median']:.2f}x the {delay:g} s floor "
                        f"(goal <= {GOAL} for 100); fakes alone "
                        f"{result['fakes_alone_wall_s']['median']:.2f} s; server CPU "
                        f"{result['app_cpu_ms_per_turn']['median']:.1f} ms/turn "
                        f"[{result['app_cpu_ms_per_turn']['min']:.1f}-"
                        f"{result['app_cpu_ms_per_turn']['max']:.1f}], event loop thread "
                        f"{result['loop_thread_cpu_ms_per_turn']['median']:.1f} (fakes "
                        f"{result['fakes_cpu_ms_per_turn']['median']:.1f}); load "
                        f"{result['load_average']:.1f}; failed {failed[code]}",
                        flush=True,
                    )
    return results


def thread_cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User plus system CPU time of one thread of a process (default: its main thread, which
    runs uvicorn's event loop)."""
    path = Path(f"/proc/{pid}/task/{tid or pid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Sample the server for a few seconds (collapsed stacks, main thread included when idle)."""
    command = [
        str(BIN / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--duration",
        "5",
        "--rate",
        "200",
        "--format",
        "raw",
        "--idle",
        "--output",
        str(out),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    time.sleep(0.5)
    return spy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--llm-delay", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", type=Path, help="py-spy collapsed stacks of the server")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument(
        "--before", help="also measure this git ref (e.g. 2e31488), rounds interleaved"
    )
    args = parser.parse_args(argv)
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        trees = [("HEAD", ROOT)]
        if args.before:
            trees.insert(0, (args.before, source_tree(args.before, Path(tmp))))
        for database in args.databases:
            if database == "postgresql" and not postgres_available():
                print("PostgreSQL not reachable: skipped")
                continue
            results += run(
                args.users,
                args.rounds,
                args.llm_delay,
                Path(tmp),
                database,
                args.profile,
                trees,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
