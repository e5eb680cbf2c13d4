"""Per-turn overhead of the pipeline and of the HTTP chat endpoint, with zero-latency backends.

1. `RagPipeline.answer()` over an embedder, a store and a generator that answer instantly,
   versus calling the same three fakes in sequence (the pipeline minus its own logic: score
   threshold, prompt building, context fitting, source mapping).
2. `POST /api/chat/` through the ASGI app (lifespan, auth, the two message inserts on a SQLite
   file) with the same fakes swapped into the state, versus the bare pipeline.

    .venv/bin/python -m bench.bench_pipeline [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import httpx
import numpy as np
from sqlalchemy import func, select

from app.chat.models import ChatMessage
from app.chat.service import ChatService
from app.main import create_app
from app.rag.pipeline import PipelineConfig, RagPipeline
from app.rag.protocols import (
    ChunkRecord,
    GenerationRequest,
    Matrix,
    Priority,
    ScoredChunk,
    Vector,
    Visibility,
)
from app.testing import running_app
from bench import corpus
from bench.harness import UNUSED_REMOTE_BACKENDS, Result, cli, fresh_database

DIMENSION = 384
QUESTION = "How does the billing service handle late deliveries in the Lisbon office?"
ANSWER = "The billing service forwards late deliveries to the duty manager every Monday [1]."
SCORES = (0.82, 0.74, 0.61)


class InstantEmbedder:
    def __init__(self, vector: Vector) -> None:
        self._matrix: Matrix = vector.reshape(1, -1)

    @property
    def dimension(self) -> int:
        return DIMENSION

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        return self._matrix if len(texts) == 1 else np.repeat(self._matrix, len(texts), axis=0)

    async def aclose(self) -> None:
        return None


class InstantStore:
    def __init__(self, chunks: list[ScoredChunk]) -> None:
        self._chunks = chunks

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        return None

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        return self._chunks[:top_k]

    async def delete(self, ids: Sequence[str]) -> None:
        return None

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        return None

    async def remove_orphans(self) -> int:
        return 0

    async def aclose(self) -> None:
        return None


class InstantGenerator:
    async def generate(self, request: GenerationRequest) -> str:
        return ANSWER

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        yield ANSWER

    async def aclose(self) -> None:
        return None


def fixed_chunks() -> list[ScoredChunk]:
    texts = corpus.passages(len(SCORES), words=150, seed=3)
    return [
        ScoredChunk(id=f"doc{n}-0", document_id=n, title=f"Handbook {n}", text=text, score=score)
        for n, (text, score) in enumerate(zip(texts, SCORES, strict=True), start=1)
    ]


async def per_turn_us(turn: Callable[[], Awaitable[object]], turns: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(turns):
        await turn()
    return (time.perf_counter_ns() - start) / turns / 1e3


async def interleaved(
    turns: int, rounds: int, **candidates: Callable[[], Awaitable[object]]
) -> dict[str, list[float]]:
    """µs per turn for each candidate, `rounds` times, the order rotating every round."""
    names = list(candidates)
    timings: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up
        await per_turn_us(candidates[name], max(turns // 10, 5))
    for n in range(rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            timings[name].append(await per_turn_us(candidates[name], turns))
    return timings


async def logged_in(client: httpx.AsyncClient) -> tuple[int, dict[str, str]]:
    """A new user's id and Authorization header."""
    account = {"email": "bench@example.com", "username": "bench", "password": "bench password 1"}
    response = await client.post("/api/signup/", json=account)
    assert response.status_code == 201, response.text
    user_id = int(response.json()["id"])
    login = {"email": account["email"], "password": account["password"]}
    response = await client.post("/api/login/", json=login)
    assert response.status_code == 200, response.text
    return user_id, {"Authorization": f"Bearer {response.json()['access']}"}


async def run(quick: bool) -> Result:
    turns, rounds = (500, 3) if quick else (2_000, 7)
    http_turns, http_rounds = (30, 3) if quick else (100, 5)
    rng = np.random.default_rng(5)
    vector = rng.standard_normal(DIMENSION).astype(np.float32)
    vector /= np.linalg.norm(vector)
    embedder, store, generator = (
        InstantEmbedder(vector),
        InstantStore(fixed_chunks()),
        InstantGenerator(),
    )
    pipeline = RagPipeline(embedder, store, generator, PipelineConfig())
    request = pipeline.build_request(QUESTION, fixed_chunks())
    assert request is not None

    answer = await pipeline.answer(QUESTION, visibility=Visibility.of_user(1))
    assert answer.text == ANSWER
    assert len(answer.sources) == len(SCORES)

    async def pipeline_turn() -> object:
        return await pipeline.answer(QUESTION, visibility=Visibility.of_user(1))

    async def bare_turn() -> object:
        vectors = await embedder.embed([QUESTION])
        await store.query(vectors[0], top_k=3, visibility=Visibility.of_user(1))
        return await generator.generate(request)

    timings = await interleaved(turns, rounds, pipeline=pipeline_turn, bare=bare_turn)

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        async with fresh_database(Path(tmp) / "http.db", **UNUSED_REMOTE_BACKENDS) as db:
            app = create_app(db.settings)
            async with running_app(app) as (client, state):
                user_id, headers = await logged_in(client)
                state["embedder"], state["store"], state["generator"] = embedder, store, generator
                state["pipeline"] = pipeline
                body = {"message": QUESTION}

                async def http_turn() -> object:
                    response = await client.post("/api/chat/", json=body, headers=headers)
                    assert response.status_code == 200, response.text
                    return response

                async def health() -> object:
                    response = await client.get("/health")
                    assert response.status_code == 200, response.text
                    return response

                first = (await client.post("/api/chat/", json=body, headers=headers)).json()
                assert first["response"] == ANSWER
                assert len(first["sources"]) == len(SCORES)
                http = await interleaved(http_turns, http_rounds, chat=http_turn, health=health)

                # One of the two message writes of a turn, on its own.
                service = ChatService(state["sessions"], pipeline, max_message_chars=4_000)
                inserts: list[float] = []
                for _ in range(http_turns):
                    start = time.perf_counter()
                    await service.store_bot_answer(
                        user_id, first["conversation_id"], answer.text, answer.sources
                    )
                    inserts.append(time.perf_counter() - start)
            async with db.sessions() as session:
                stored = (await session.execute(select(func.count(ChatMessage.id)))).scalar_one()
    expected_messages = 2 * (1 + max(http_turns // 10, 5) + http_turns * http_rounds) + http_turns
    assert stored == expected_messages, (stored, expected_messages)

    pipe_us, bare_us = min(timings["pipeline"]), min(timings["bare"])
    chat_us, health_us = min(http["chat"]), min(http["health"])
    insert_us = statistics.median(inserts) * 1e6
    result = Result(
        name="pipeline",
        description="RagPipeline.answer and POST /api/chat/ with zero-latency backends",
        params={
            "turns_per_round": turns,
            "rounds": rounds,
            "http_turns_per_round": http_turns,
            "http_rounds": http_rounds,
            "chunks": len(SCORES),
            "chunk_words": 150,
            "event_loop": "asyncio (uvicorn would use uvloop when installed)",
        },
        metrics={
            "bare_us": bare_us,
            "pipeline_us": pipe_us,
            "pipeline_ratio": pipe_us / bare_us,
            "pipeline_own_logic_us": pipe_us - bare_us,
            "pipeline_median_us": statistics.median(timings["pipeline"]),
            "http_chat_us": chat_us,
            "http_chat_median_us": statistics.median(http["chat"]),
            "http_health_us": health_us,
            "message_insert_median_us": insert_us,
            "http_ratio_to_pipeline": chat_us / pipe_us,
            "http_overhead_us": chat_us - pipe_us,
        },
    )
    result.headline("answer(), pipeline vs 3 fakes", pipe_us, bare_us, "µs/turn")
    result.headline("POST /api/chat/ vs pipeline", chat_us, pipe_us, "µs/turn")
    result.row("three fakes in sequence", f"{bare_us:8.1f} µs/turn (baseline)")
    result.row(
        "RagPipeline.answer",
        f"{pipe_us:8.1f} µs/turn ({pipe_us / bare_us:.1f}x; own logic {pipe_us - bare_us:.1f} µs)",
    )
    result.row(
        "POST /api/chat/ (ASGI)",
        f"{chat_us:8.1f} µs/turn ({chat_us / pipe_us:.0f}x the pipeline; "
        f"+{(chat_us - pipe_us) / 1e3:.2f} ms for HTTP, auth and 2 message inserts)",
    )
    result.row("GET /health (ASGI)", f"{health_us:8.1f} µs/request (one DB session: the floor)")
    result.row("one message insert", f"{insert_us:8.1f} µs (ChatService.store_bot_answer, median)")
    result.notes.append(
        f"best of {rounds} rounds x {turns} turns (pipeline) and {http_rounds} x {http_turns} "
        "(HTTP), rounds interleaved; the HTTP time includes the httpx client side"
    )
    return result


def main() -> None:
    cli(run)


if __name__ == "__main__":
    main()
