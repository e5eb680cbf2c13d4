"""Extractive answers cost one encode per turn once a chunk's sentences have been seen, and
say the same as the uncached path."""

from __future__ import annotations

import pytest

from app.rag.backends.local import ExtractiveGenerator, LocalEmbedder
from app.rag.protocols import GenerationRequest, ScoredChunk
from tests.conftest import make_settings
from tests.perf.test_embedder_lanes import SlowModel

CHUNKS = [
    ScoredChunk(
        id="leave",
        document_id=1,
        title="Handbook",
        text="Every employee gets 25 days of paid leave per year. Up to 5 unused days carry "
        "over. Sick leave is separate and needs a doctor's note after three days.",
        score=0.8,
    ),
    ScoredChunk(
        id="office",
        document_id=2,
        title="Office",
        text="The office opens at 8am. Visitors sign in at reception. The kitchen is on the "
        "second floor, next to the meeting rooms.",
        score=0.5,
    ),
]
QUESTIONS = [
    "How many days of leave do I get?",
    "Can I carry over unused leave?",
    "When do I need a doctor's note?",
    "Where is the kitchen?",
    "When does the office open?",
]


def _request(question: str) -> GenerationRequest:
    return GenerationRequest(question=question, contexts=CHUNKS, messages=[])


async def test_generate_second_turn_on_same_chunks_encodes_only_the_question() -> None:
    model = SlowModel()
    embedder = LocalEmbedder(model)
    generator = ExtractiveGenerator(embedder)
    try:
        for question in QUESTIONS[:2]:
            before = len([t for call in model.calls for t in call])
            await embedder.embed([question])  # retrieval
            await generator.generate(_request(question))
            encoded = len([t for call in model.calls for t in call]) - before
            if question == QUESTIONS[0]:
                assert encoded > 10  # the question plus every sentence and pair, once
            else:
                assert encoded == 1
    finally:
        await embedder.aclose()


async def test_generate_cache_is_bounded() -> None:
    embedder = LocalEmbedder(SlowModel())
    generator = ExtractiveGenerator(embedder, cache_vectors=3)
    try:
        await generator.generate(_request(QUESTIONS[0]))
        assert len(generator._cache) == 3
    finally:
        await embedder.aclose()


@pytest.fixture(scope="module")
async def model() -> object:
    real = await LocalEmbedder.load(make_settings("sqlite+aiosqlite://"))
    return real._model


async def test_generate_cached_answers_match_uncached_with_real_model(model: object) -> None:
    cached = LocalEmbedder(model)
    uncached = LocalEmbedder(model, query_cache=0)
    warm = ExtractiveGenerator(cached)
    cold = ExtractiveGenerator(uncached, cache_vectors=0)  # one encode of everything per turn
    try:
        for question in QUESTIONS * 2:
            await cached.embed([question])  # retrieval, as the pipeline does
            assert await warm.generate(_request(question)) == await cold.generate(
                _request(question)
            )
    finally:
        await cached.aclose()
        await uncached.aclose()
