"""Chat turns on the embedded defaults (local MiniLM, local store, extractive answers) through
`chatbot serve`, and the same chats while a 2,000-chunk document is being ingested.

* Throughput: 4 concurrent clients for `--seconds`; time per turn against one raw MiniLM query
  encode measured in a process of its own (goal: a turn <= 2x one encode, ratio >= 0.5).
* Fair sharing (issue 9): serial chat p50 idle, then during the ingestion (goal <= 3x idle);
  `--sub-batches 4 64` also runs the ingestion encoded 64 chunks at a time, as before the
  priority lane (a query then waits behind a whole ingestion batch).

    .venv/bin/python -m bench.perf.turns [--rounds 3] [--seconds 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.corpus import documents
from bench.harness import machine
from bench.servers import ROOT, running, signup, source_tree, spread, start_app

QUESTIONS = [
    "Who reviews every open invoice?",
    "When does the billing service archive expense claims?",
    "What does the help desk do with password resets?",
    "Why was the shipping partner asked to verify late deliveries?",
]
EMBEDDED = {
    "EMBEDDING_BACKEND": "local",
    "LLM_BACKEND": "extractive",
    "VECTOR_STORE": "local",
    "EMBEDDING_URL": "",
    "LLM_BASE_URL": "",
    "MAX_UPLOAD_BYTES": str(50 * 1024 * 1024),
    "MAX_JSON_BODY_BYTES": str(50 * 1024 * 1024),
}
RAW_ENCODE = """
import statistics, sys, time
import torch
from sentence_transformers import SentenceTransformer
from app.rag.backends.local import resolve_model_path
model = SentenceTransformer(str(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")),
                            device="cpu", local_files_only=True)
if int(sys.argv[1]):
    torch.set_num_threads(int(sys.argv[1]))  # as the server's EMBEDDING_THREADS
questions = sys.argv[2:]
for q in questions * 3:
    model.encode([q], normalize_embeddings=True)
times = []
for n in range(60):
    start = time.perf_counter()
    model.encode([questions[n % len(questions)]], normalize_embeddings=True)
    times.append(time.perf_counter() - start)
print(statistics.median(times) * 1e3)
"""


def raw_encode_ms(threads: int) -> float:
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", RAW_ENCODE, str(threads), *QUESTIONS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return float(out.stdout.strip().splitlines()[-1])


async def concurrent_turns(base: str, headers: dict[str, str], seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            i = n
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await http.post(
                    "/api/chat/", json={"message": QUESTIONS[i % len(QUESTIONS)]}
                )
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)
                i += 1

    start = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(4)))
    wall = time.perf_counter() - start
    return {
        "ms_per_turn": wall / len(latencies) * 1e3,
        "turns": len(latencies),
        "p50_ms": statistics.median(latencies) * 1e3,
    }


async def serial_p50(base: str, headers: dict[str, str], count: int) -> float:
    latencies = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        for i in range(count):
            start = time.perf_counter()
            response = await http.post("/api/chat/", json={"message": QUESTIONS[i % 4]})
            response.raise_for_status()
            latencies.append(time.perf_counter() - start)
    return statistics.median(latencies) * 1e3


def big_document(chunks: int, seed: int) -> str:
    # About 3.2 chunks per synthetic document at the default CHUNK_TOKENS=200; the count the
    # server made is reported. A new seed per round: new content, never a duplicate.
    return "\n\n".join(text for _, text in documents(round(chunks / 3.2), paragraphs=4, seed=seed))


async def during_ingestion(
    base: str, headers: dict[str, str], chunks: int, count: int, seed: int
) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
        created = await http.post(
            "/api/documents/", json={"title": "Big", "content": big_document(chunks, seed)}
        )
        created.raise_for_status()
        document = created.json()
        p50 = await serial_p50(base, headers, count)
        status = (await http.get(f"/api/documents/{document['id']}/")).json()["status"]
        await http.delete(f"/api/documents/{document['id']}/")  # stops the ingestion
    return {"p50_ms": p50, "chunks": document["chunks"], "still_processing": status == "processing"}


def measure(
    sub_batch: int,
    threads: int,
    workdir: Path,
    rounds: int,
    seconds: float,
    chunks: int,
    code: str = "HEAD",
    root: Path = ROOT,
) -> dict[str, Any]:
    db = f"sqlite+aiosqlite:///{workdir}/turns-{code}-{sub_batch}.db"
    env = {
        **EMBEDDED,
        "EMBEDDING_BULK_SUB_BATCH": str(sub_batch),
        "EMBEDDING_THREADS": str(threads),
    }
    per_turn, encodes, idle, busy = [], [], [], []
    processing = True
    with running([start_app(db, workdir, env, root=root)]) as (app,):
        headers = signup(app.base)
        httpx.post(
            f"{app.base}/api/documents/",
            headers=headers,
            json={
                "title": "Handbook",
                "content": "\n\n".join(t for _, t in documents(4, paragraphs=3)),
            },
            timeout=120,
        ).raise_for_status()
        asyncio.run(serial_p50(app.base, headers, 8))  # warm: model, index, sentence vectors
        for r in range(rounds):
            steps = ["turns", "raw"] if r % 2 == 0 else ["raw", "turns"]
            for step in steps:
                if step == "turns":
                    per_turn.append(
                        asyncio.run(concurrent_turns(app.base, headers, seconds))["ms_per_turn"]
                    )
                else:
                    encodes.append(raw_encode_ms(threads))
            idle.append(asyncio.run(serial_p50(app.base, headers, 30)))
            busy_run = asyncio.run(
                during_ingestion(app.base, headers, chunks, 30, 1000 * sub_batch + r)
            )
            busy.append(busy_run["p50_ms"])
            print(
                f"  {code} round {r}: idle p50 {idle[-1]:.1f} ms, ingesting {busy[-1]:.1f} ms",
                flush=True,
            )
            processing = processing and bool(busy_run["still_processing"])
            time.sleep(2)  # the deletion finishes
    return {
        "code": code,
        "sub_batch": sub_batch,
        "threads": threads,
        "ms_per_turn_4_clients": spread(per_turn),
        "raw_encode_ms": spread(encodes),
        "turn_ratio": spread([e / t for e, t in zip(encodes, per_turn, strict=True)]),
        "idle_p50_ms": spread(idle),
        "ingesting_p50_ms": spread(busy),
        "ingestion_ratio": spread([b / i for b, i in zip(busy, idle, strict=True)]),
        "ingestion_chunks": busy_run["chunks"],
        "ingestion_still_running_at_end": processing,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--sub-batches", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--threads", type=int, default=1, help="EMBEDDING_THREADS")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--before", help="measure this git ref instead (its own embedder: torch's threads)"
    )
    args = parser.parse_args(argv)
    info = machine()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(sub_batch, args.threads, "HEAD", ROOT) for sub_batch in args.sub_batches]
        if args.before:  # the old embedder: one queue, 64-chunk batches, torch's threads
            runs = [(64, 0, args.before, source_tree(args.before, Path(tmp)))]
        for sub_batch, threads, code, root in runs:
            r = measure(
                sub_batch, threads, Path(tmp), args.rounds, args.seconds, args.chunks, code, root
            )
            results.append(r)
            print(
                f"{code:8} sub-batch {sub_batch:3}, {threads} thread(s): turn "
                f"{r['ms_per_turn_4_clients']['median']:.1f} ms "
                f"(4 clients) vs raw encode {r['raw_encode_ms']['median']:.1f} ms = ratio "
                f"{r['turn_ratio']['median']:.2f} [{r['turn_ratio']['min']:.2f}-"
                f"{r['turn_ratio']['max']:.2f}] (goal >= 0.5); chat p50 idle "
                f"{r['idle_p50_ms']['median']:.1f} ms, during a {r['ingestion_chunks']}-chunk "
                f"ingestion {r['ingesting_p50_ms']['median']:.1f} ms = "
                f"{r['ingestion_ratio']['median']:.2f}x [{r['ingestion_ratio']['min']:.2f}-"
                f"{r['ingestion_ratio']['max']:.2f}] (goal <= 3); ingestion still running at the "
                f"end of every measurement: {r['ingestion_still_running_at_end']}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
