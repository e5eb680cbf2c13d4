"""The local embedder's two lanes: a chat query never waits behind more than one sub-batch of
ingestion, and the question of a turn is encoded once."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.rag.backends.local import LocalEmbedder
from app.rag.protocols import Matrix

DIMENSION = 8


class SlowModel:
    """Stands in for SentenceTransformer: deterministic unit vectors, a fixed cost per text,
    and a log of every encode call (which texts, in order)."""

    def __init__(self, seconds_per_text: float = 0.0) -> None:
        self.seconds_per_text = seconds_per_text
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def get_embedding_dimension(self) -> int:
        return DIMENSION

    def encode(self, texts: Sequence[str], **_: Any) -> Matrix:
        with self._lock:
            self.calls.append(list(texts))
        time.sleep(self.seconds_per_text * len(texts))
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            vector = np.random.default_rng(seed).normal(size=DIMENSION).astype(np.float32)
            rows.append(vector / np.linalg.norm(vector))
        return np.stack(rows)


async def test_embed_query_during_bulk_waits_at_most_one_sub_batch() -> None:
    model = SlowModel(seconds_per_text=0.01)
    embedder = LocalEmbedder(model, bulk_sub_batch=4)
    try:
        bulk = asyncio.create_task(
            embedder.embed([f"chunk {n}" for n in range(64)], priority="bulk")
        )
        await asyncio.sleep(0.015)  # the first sub-batch is being encoded
        started = time.perf_counter()
        await embedder.embed(["what is the refund policy?"])
        waited = time.perf_counter() - started
        vectors = await bulk
    finally:
        await embedder.aclose()
    query_call = next(i for i, call in enumerate(model.calls) if "refund" in call[0])
    assert query_call == 1, model.calls[:3]  # right after the sub-batch under way
    assert all(len(call) <= 4 for call in model.calls)
    assert waited < 0.64 / 2  # far less than the 64-chunk batch (0.64 s of encoding)
    assert vectors.shape == (64, DIMENSION)
    expected = model.encode([f"chunk {n}" for n in range(64)])
    assert np.allclose(vectors, expected)


async def test_embed_bulk_jobs_finish_in_order_with_queries_interleaved() -> None:
    model = SlowModel(seconds_per_text=0.002)
    embedder = LocalEmbedder(model, bulk_sub_batch=3)
    try:
        first = asyncio.create_task(embedder.embed(["a1", "a2", "a3", "a4"], priority="bulk"))
        second = asyncio.create_task(embedder.embed(["b1", "b2"], priority="bulk"))
        queries = [asyncio.create_task(embedder.embed([f"q{n}"])) for n in range(3)]
        results = await asyncio.gather(first, second, *queries)
    finally:
        await embedder.aclose()
    assert [r.shape[0] for r in results] == [4, 2, 1, 1, 1]
    flat = [text for call in model.calls for text in call]
    assert flat.index("a4") < flat.index("b1")  # bulk is first come, first served
    assert max(flat.index(f"q{n}") for n in range(3)) < flat.index("a4")


async def test_embed_repeated_question_is_encoded_once() -> None:
    model = SlowModel()
    embedder = LocalEmbedder(model, query_cache=2)
    try:
        first = await embedder.embed(["how many days of leave?"])
        again = await embedder.embed(["how many days of leave?", "a new one"])
        for n in range(3):  # evicts the first question (cache of 2)
            await embedder.embed([f"filler {n}"])
        third = await embedder.embed(["how many days of leave?"])
    finally:
        await embedder.aclose()
    encoded = [text for call in model.calls for text in call]
    assert encoded.count("how many days of leave?") == 2
    assert np.array_equal(first[0], again[0])
    assert np.array_equal(first[0], third[0])


async def test_embed_bulk_is_never_cached() -> None:
    model = SlowModel()
    embedder = LocalEmbedder(model)
    try:
        await embedder.embed(["same text"], priority="bulk")
        await embedder.embed(["same text"], priority="bulk")
        await embedder.embed(["same text"])
    finally:
        await embedder.aclose()
    assert sum(call.count("same text") for call in model.calls) == 3


async def test_embed_cancelled_bulk_caller_does_not_block_queries() -> None:
    model = SlowModel(seconds_per_text=0.005)
    embedder = LocalEmbedder(model, bulk_sub_batch=2)
    try:
        bulk = asyncio.create_task(embedder.embed([f"c{n}" for n in range(40)], priority="bulk"))
        await asyncio.sleep(0.005)
        bulk.cancel()
        vector = await asyncio.wait_for(embedder.embed(["question"]), timeout=5)
    finally:
        await embedder.aclose()
    assert vector.shape == (1, DIMENSION)
    assert sum(len(call) for call in model.calls) < 40  # the rest of the job was dropped


async def test_embed_failing_bulk_sub_batch_fails_only_that_job() -> None:
    class Failing(SlowModel):
        def encode(self, texts: Sequence[str], **kwargs: Any) -> Matrix:
            if any(t.startswith("bad") for t in texts):
                raise RuntimeError("encoder failed")
            return super().encode(texts, **kwargs)

    embedder = LocalEmbedder(Failing(), bulk_sub_batch=2)
    try:
        bad = asyncio.create_task(embedder.embed(["ok", "fine", "bad"], priority="bulk"))
        good = asyncio.create_task(embedder.embed(["x", "y", "z"], priority="bulk"))
        results = await asyncio.gather(bad, good, return_exceptions=True)
        after = await embedder.embed(["question"])
    finally:
        await embedder.aclose()
    assert isinstance(results[0], RuntimeError)
    assert isinstance(results[1], np.ndarray)
    assert results[1].shape == (3, DIMENSION)
    assert after.shape == (1, DIMENSION)
