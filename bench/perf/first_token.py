"""Time from the fake LLM's first token to the client's first `delta` event of
`POST /api/chat/stream/` (goal <= 10 ms), serial requests, grounded answers (a document in the
Pinecone fake). The fake writes its send time (`time.time()`, the client's clock) as the first
word; baseline in the same run, alternating: the same client streaming from the fake directly.

    .venv/bin/python -m bench.perf.first_token [--requests 30] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import machine
from bench.perf.concurrency import COMPLETION, app_env
from bench.servers import running, signup, spread, start_app, start_module

GOAL_MS = 10.0
QUESTION = "How many days of paid leave does every employee get?"


def _gap_ms(first_text: str) -> float:
    return (time.time() - float(first_text.split()[0])) * 1e3


def through_app(client: httpx.Client, headers: dict[str, str]) -> float:
    with client.stream(
        "POST", "/api/chat/stream/", json={"message": QUESTION}, headers=headers
    ) as response:
        response.raise_for_status()
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "delta":
                return _gap_ms(json.loads(line[6:])["text"])
    raise RuntimeError("no delta event")


def from_fake(client: httpx.Client, fakes: str) -> float:
    with client.stream(
        "POST", f"{fakes}/v1/chat/completions", json={**COMPLETION, "stream": True}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                content = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if content:
                    return _gap_ms(content)
    raise RuntimeError("no token")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    info = machine()
    app_ms: list[float] = []
    fake_ms: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with running([start_module("bench.perf.fakes", workdir, "--llm-delay", "0.05")]) as (
            fakes,
        ):
            env = {**app_env(fakes.base), "RAG_FALLBACK": "refuse", "RAG_MIN_SCORE": "-1"}
            db = f"sqlite+aiosqlite:///{workdir}/first-token.db"
            with running([start_app(db, workdir, env)]) as (app,):
                headers = signup(app.base)
                with httpx.Client(base_url=app.base, timeout=30) as client:
                    client.post(
                        "/api/documents/",
                        headers=headers,
                        json={"title": "Handbook", "content": QUESTION + " Twenty-five."},
                    ).raise_for_status()
                    for _ in range(3):  # warm
                        through_app(client, headers)
                        from_fake(client, fakes.base)
                    for r in range(args.rounds):
                        order = ["app", "fake"] if r % 2 == 0 else ["fake", "app"]
                        for which in order:
                            for _ in range(args.requests):
                                if which == "app":
                                    app_ms.append(through_app(client, headers))
                                else:
                                    fake_ms.append(from_fake(client, fakes.base))
    per_round = args.requests
    app_medians = [
        statistics.median(app_ms[i : i + per_round]) for i in range(0, len(app_ms), per_round)
    ]
    fake_medians = [
        statistics.median(fake_ms[i : i + per_round]) for i in range(0, len(fake_ms), per_round)
    ]
    result: dict[str, Any] = {
        "app_first_delta_ms": spread(app_medians),
        "fake_direct_ms": spread(fake_medians),
        "app_p95_ms": float(sorted(app_ms)[int(0.95 * len(app_ms))]),
        "goal_met": spread(app_medians)["median"] <= GOAL_MS,
    }
    print(
        f"first token -> first delta through the app: p50 "
        f"{result['app_first_delta_ms']['median']:.2f} ms [{min(app_medians):.2f}-"
        f"{max(app_medians):.2f}] p95 {result['app_p95_ms']:.2f} (goal <= {GOAL_MS:g}); "
        f"streamed from the fake directly {result['fake_direct_ms']['median']:.2f} ms",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "result": result}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
