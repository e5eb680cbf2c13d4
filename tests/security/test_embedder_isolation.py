"""Issue 22, finding 1: the local embedder merges several users' texts into one encoder pass;
one user's bad input must fail only that user's request. Runs the real MiniLM model, with a
gate on its first encode so that the requests below are queued behind it and meet in one pass
(deterministic, no sleeps)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from app.core.errors import InvalidInput
from app.rag.backends.local import DEFAULT_MODEL_ID, LocalEmbedder, resolve_model_path
from app.rag.backends.local.embedder import _load_model
from app.rag.protocols import Matrix, Priority
from tests.conftest import AppFactory, new_user

QUESTION = "How many days of annual leave do employees get?"
LEAVE = (
    "Employees receive 25 days of paid annual leave per calendar year. Up to five unused days "
    "can be carried over until the end of March of the following year."
)
POISON = "a text this tokenizer build cannot take"
GATE_SECONDS = 60  # a bound on a test that went wrong, not a timing


class GatedModel:
    """The real model, whose first encode waits for `gate` (holding the encoder busy), and
    which fails like the tokenizer did on a lone surrogate for any batch holding POISON."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls: list[list[str]] = []

    def get_embedding_dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], **kwargs: Any) -> Matrix:
        self.calls.append(list(texts))
        if len(self.calls) == 1:
            self.entered.set()
            self.gate.wait(GATE_SECONDS)
        if POISON in texts:
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        result: Matrix = self.model.encode(list(texts), **kwargs)
        return result


@pytest.fixture(scope="module")
def minilm() -> Any:
    return _load_model(resolve_model_path(DEFAULT_MODEL_ID))


async def test_embed_merged_pass_one_failing_input_fails_only_its_caller(minilm: Any) -> None:
    model = GatedModel(minilm)
    embedder = LocalEmbedder(model)
    try:
        busy = asyncio.create_task(embedder.embed(["keeps the encoder busy"]))
        await asyncio.to_thread(model.entered.wait, GATE_SECONDS)
        poisoned = asyncio.create_task(embedder.embed([POISON]))
        other_user = asyncio.create_task(embedder.embed([QUESTION]))
        await asyncio.sleep(0)  # let both tasks queue their texts (no timing involved)
        model.gate.set()
        results = await asyncio.gather(busy, poisoned, other_user, return_exceptions=True)
    finally:
        model.gate.set()
        await embedder.aclose()

    assert model.calls[1] == [POISON, QUESTION]  # the two callers met in one pass
    assert isinstance(results[1], TypeError)
    vector = results[2]
    assert isinstance(vector, np.ndarray)
    expected = minilm.encode([QUESTION], normalize_embeddings=True, convert_to_numpy=True)
    assert np.allclose(vector, expected, atol=1e-5)


async def test_embed_lone_surrogate_refused_before_batching_others_unaffected(
    minilm: Any,
) -> None:
    model = GatedModel(minilm)
    embedder = LocalEmbedder(model)
    try:
        busy = asyncio.create_task(embedder.embed(["keeps the encoder busy"]))
        await asyncio.to_thread(model.entered.wait, GATE_SECONDS)
        with pytest.raises(InvalidInput):
            await embedder.embed(["x \ud800"])
        other_user = asyncio.create_task(embedder.embed([QUESTION]))
        await asyncio.sleep(0)
        model.gate.set()
        await busy
        vector = await other_user
    finally:
        model.gate.set()
        await embedder.aclose()

    assert all("x \ud800" not in call for call in model.calls)  # never reached the encoder
    assert vector.shape == (1, model.get_embedding_dimension())


async def test_chat_during_busy_encoder_with_bad_embedding_request_only_bad_one_fails(
    app_factory: AppFactory,
) -> None:
    """Over HTTP, as reproduced: a large /v1/embeddings keeps the real encoder busy, a bad
    embedding request and another user's chat arrive meanwhile: 200, 400, 200."""
    async with app_factory() as (client, state):
        alice = await new_user(client, "alice@example.com")
        bob = await new_user(client, "bob@example.com")
        upload = {"title": "Leave", "content": LEAVE}
        assert (await client.post("/api/documents/", json=upload, headers=bob)).is_success

        embedder = state["embedder"]
        assert isinstance(embedder, LocalEmbedder)
        model = GatedModel(embedder._model)
        embedder._model = model
        question_queued = asyncio.Event()
        bad_reached_encoder = asyncio.Event()
        embed = embedder.embed

        async def watched(texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
            if any("\ud800" in t for t in texts):
                bad_reached_encoder.set()
            pending = asyncio.ensure_future(embed(texts, priority=priority))
            await asyncio.sleep(0)  # the job is queued once the task has run this far
            if QUESTION in texts:
                question_queued.set()
            return await pending

        embedder.embed = watched  # type: ignore[method-assign]
        try:
            big = {"model": "rag-embedding", "input": [f"{LEAVE} {n}" for n in range(32)]}
            bulk = asyncio.create_task(client.post("/v1/embeddings", json=big, headers=alice))
            await asyncio.to_thread(model.entered.wait, GATE_SECONDS)
            bad = asyncio.create_task(
                client.post(
                    "/v1/embeddings",
                    content=b'{"model": "rag-embedding", "input": "x \\ud800"}',
                    headers={**alice, "Content-Type": "application/json"},
                )
            )
            reached = asyncio.create_task(bad_reached_encoder.wait())
            await asyncio.wait({bad, reached}, return_when=asyncio.FIRST_COMPLETED)
            chat = asyncio.create_task(
                client.post("/api/chat/", json={"message": QUESTION}, headers=bob)
            )
            await asyncio.wait_for(question_queued.wait(), GATE_SECONDS)
            model.gate.set()
            responses = await asyncio.gather(bulk, bad, chat)
            reached.cancel()
        finally:
            model.gate.set()

    assert [r.status_code for r in responses] == [200, 400, 200], [r.text for r in responses]
    assert len(responses[0].json()["data"]) == 32
    assert responses[2].json()["response"]
