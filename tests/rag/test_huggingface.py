"""The Hugging Face backends driving the real AsyncInferenceClient against a fake on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from app.core.config import Settings
from app.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.rag.backends import huggingface
from app.rag.backends.huggingface import HuggingFaceEmbedder, HuggingFaceGenerator
from app.rag.protocols import ChatTurn, GenerationRequest, ScoredChunk
from tests.fakes.huggingface import (
    DEFAULT_ANSWER,
    FakeHuggingFace,
    Fault,
    delay,
    malformed,
    status,
    wrong_dimension,
)
from tests.fakes.server import serve

API_KEY = "hf_test_secret_key_123"
MODEL = "mistralai/Mistral-7B-Instruct-v0.2"
EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CONTEXT = "[1] France: Paris is the capital of France."


class FakeClock:
    """Stands in for time.monotonic and asyncio.sleep: sleeping advances time instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace()
    with serve(fake.app) as base_url:
        yield fake, base_url


@pytest.fixture
def fake(fake_server: tuple[FakeHuggingFace, str]) -> FakeHuggingFace:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
def base_url(fake_server: tuple[FakeHuggingFace, str]) -> str:
    return fake_server[1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def generator(base_url: str, clock: FakeClock) -> AsyncIterator[HuggingFaceGenerator]:
    backend = HuggingFaceGenerator(
        model=MODEL,
        api_key=API_KEY,
        base_url=f"{base_url}/v1",
        timeout=5,
        retry_deadline=10,
        sleep=clock.sleep,
        clock=clock,
    )
    yield backend
    await backend.aclose()


@pytest.fixture
async def embedder(base_url: str, clock: FakeClock) -> AsyncIterator[HuggingFaceEmbedder]:
    backend = HuggingFaceEmbedder(
        model=EMBED_MODEL,
        api_key=API_KEY,
        url=f"{base_url}/embed",
        batch_size=2,
        timeout=5,
        retry_deadline=10,
        sleep=clock.sleep,
        clock=clock,
    )
    yield backend
    await backend.aclose()


def _request(question: str = "What is the capital of France?") -> GenerationRequest:
    chunk = ScoredChunk(id="c1", document_id=1, title="France", text=CONTEXT, score=0.9)
    return GenerationRequest(
        question=question,
        contexts=[chunk],
        messages=[
            ChatTurn("system", "Answer from the context and cite it."),
            ChatTurn("user", f"Context:\n{CONTEXT}\n\nQuestion: {question}"),
        ],
        max_tokens=64,
        temperature=0.1,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_generate_with_base_url_sends_chat_request_and_returns_answer(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace
) -> None:
    answer = await generator.generate(_request())

    assert answer == DEFAULT_ANSWER
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json["model"] == MODEL
    assert sent.json["max_tokens"] == 64
    assert sent.json["temperature"] == 0.1
    assert sent.json["stream"] is False
    assert sent.json["messages"][0] == {
        "role": "system",
        "content": "Answer from the context and cite it.",
    }
    assert sent.json["messages"][1]["role"] == "user"
    assert CONTEXT in sent.json["messages"][1]["content"]


async def test_stream_with_base_url_yields_deltas_in_order(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace
) -> None:
    deltas = [delta async for delta in generator.stream(_request())]

    assert deltas == ["The", " capital", " of", " France", " is", " Paris", " [1]."]
    assert "".join(deltas) == DEFAULT_ANSWER
    [sent] = fake.requests
    assert sent.json["stream"] is True
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


async def test_stream_after_503_retries_before_first_delta(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace
) -> None:
    fake.push(status(503))

    text = "".join([delta async for delta in generator.stream(_request())])

    assert text == DEFAULT_ANSWER
    assert len(fake.requests) == 2


async def test_stream_with_non_sse_body_raises_upstream_error(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace
) -> None:
    fake.push(malformed())

    with pytest.raises(UpstreamError) as caught:
        _ = [delta async for delta in generator.stream(_request())]

    assert caught.value.status_code == 502


async def test_stream_with_error_event_raises_upstream_error(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace
) -> None:
    event = json.dumps({"error": "CUDA out of memory", "error_type": "generation"})
    fake.push(malformed(f"data: {event}\n\n"))

    with pytest.raises(UpstreamError) as caught:
        _ = [delta async for delta in generator.stream(_request())]

    assert caught.value.status_code == 502


async def test_generate_after_429_retries_after_header_delay_and_succeeds(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(status(429, headers={"Retry-After": "1"}))

    answer = await generator.generate(_request())

    assert answer == DEFAULT_ANSWER
    assert len(fake.requests) == 2
    assert clock.sleeps == [1.0]


async def test_generate_with_http_date_retry_after_in_past_retries_at_once(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(status(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))

    assert await generator.generate(_request()) == DEFAULT_ANSWER
    assert clock.sleeps == [0.0]


async def test_generate_when_rate_limited_forever_raises_unavailable_with_retry_after(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(status(429, headers={"Retry-After": "3"}), times=None)

    with pytest.raises(UpstreamUnavailable) as caught:
        await generator.generate(_request())

    # Deadline 10 s: attempts at t=0, 3, 6, 9; at t=9 only 1 s is left, less than Retry-After.
    assert len(fake.requests) == 4
    assert clock.sleeps == [3.0, 3.0, 3.0]
    assert caught.value.status_code == 503
    assert caught.value.retry_after == 3.0
    assert caught.value.headers == {"Retry-After": "3"}


async def test_generate_after_503_without_retry_after_backs_off_with_jitter(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(status(503), status(503))

    assert await generator.generate(_request()) == DEFAULT_ANSWER
    assert len(fake.requests) == 3
    first, second = clock.sleeps
    assert 0 <= first <= 0.5
    assert 0 <= second <= 1.0


async def test_generate_when_503_outlasts_deadline_raises_unavailable(
    base_url: str, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(status(503), times=None)
    backend = HuggingFaceGenerator(
        model=MODEL,
        api_key=API_KEY,
        base_url=f"{base_url}/v1",
        retry_deadline=2,
        sleep=clock.sleep,
        clock=clock,
    )
    try:
        with pytest.raises(UpstreamUnavailable) as caught:
            await backend.generate(_request())
    finally:
        await backend.aclose()

    assert len(fake.requests) == len(clock.sleeps) + 1 >= 2
    assert clock.now == pytest.approx(2.0)
    assert caught.value.retry_after is None


async def test_generate_when_server_too_slow_raises_timeout_without_retry(
    base_url: str, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(delay(1.0))
    backend = HuggingFaceGenerator(
        model=MODEL,
        api_key=API_KEY,
        base_url=f"{base_url}/v1",
        timeout=0.2,
        sleep=clock.sleep,
        clock=clock,
    )
    try:
        with pytest.raises(UpstreamTimeout) as caught:
            await backend.generate(_request())
    finally:
        await backend.aclose()

    assert caught.value.status_code == 504
    assert len(fake.requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("code", [400, 401, 404, 422, 500])
async def test_generate_on_http_error_raises_upstream_error_without_key(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, code: int
) -> None:
    fake.push(status(code))

    with pytest.raises(UpstreamError) as caught:
        await generator.generate(_request())

    assert type(caught.value) is UpstreamError
    assert caught.value.status_code == 502
    assert str(code) in caught.value.detail
    assert API_KEY not in caught.value.detail
    assert len(fake.requests) == 1


async def test_generate_when_server_echoes_key_keeps_it_out_of_detail_and_logs(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, caplog: pytest.LogCaptureFixture
) -> None:
    fake.push(Fault(status=401, body=json.dumps({"error": f"Invalid token {API_KEY}"})))

    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError) as caught:
        await generator.generate(_request())

    assert "Invalid token ***" in caplog.text
    assert API_KEY not in caplog.text
    assert API_KEY not in caught.value.detail


async def test_generate_on_upstream_504_raises_timeout(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace
) -> None:
    fake.push(status(504))

    with pytest.raises(UpstreamTimeout):
        await generator.generate(_request())
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        "<html>not json</html>",
        json.dumps({"id": "x", "object": "chat.completion"}),
        json.dumps({"id": "x", "choices": []}),
        json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": None}}]}),
    ],
    ids=["not-json", "no-choices", "empty-choices", "null-content"],
)
async def test_generate_with_malformed_body_raises_upstream_error(
    generator: HuggingFaceGenerator, fake: FakeHuggingFace, body: str
) -> None:
    fake.push(malformed(body))

    with pytest.raises(UpstreamError) as caught:
        await generator.generate(_request())

    assert type(caught.value) is UpstreamError
    assert len(fake.requests) == 1


async def test_generate_when_connection_refused_retries_then_raises_unavailable(
    clock: FakeClock,
) -> None:
    backend = HuggingFaceGenerator(
        model=MODEL,
        api_key=API_KEY,
        base_url=f"http://127.0.0.1:{_closed_port()}/v1",
        retry_deadline=3,
        sleep=clock.sleep,
        clock=clock,
    )
    try:
        with pytest.raises(UpstreamUnavailable) as caught:
            await backend.generate(_request())
    finally:
        await backend.aclose()

    assert clock.sleeps
    assert clock.now == pytest.approx(3.0)
    assert caught.value.retry_after is None
    assert caught.value.status_code == 503


def test_init_router_with_non_hf_key_raises_value_error() -> None:
    with pytest.raises(ValueError, match="hf_"):
        HuggingFaceGenerator(model=MODEL, api_key="sk-openai-key")


def test_init_router_without_key_raises_value_error() -> None:
    with pytest.raises(ValueError, match="LLM_BASE_URL"):
        HuggingFaceGenerator(model=MODEL, api_key=None)


async def test_from_settings_uses_model_base_url_and_key(
    base_url: str, fake: FakeHuggingFace
) -> None:
    settings = Settings(
        _env_file=None,
        huggingface_api_key=API_KEY,
        llm_model="my-local-model",
        llm_base_url=f"{base_url}/v1",
    )
    backend = HuggingFaceGenerator.from_settings(settings)
    try:
        assert await backend.generate(_request()) == DEFAULT_ANSWER
    finally:
        await backend.aclose()

    [sent] = fake.requests
    assert sent.json["model"] == "my-local-model"
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


async def test_embed_many_texts_returns_normalised_rows_in_batches(
    embedder: HuggingFaceEmbedder, fake: FakeHuggingFace
) -> None:
    texts = ["Paris is in France", "Berlin is in Germany", "cats", "dogs", "birds"]

    matrix = await embedder.embed(texts)

    assert matrix.dtype == np.float32
    assert matrix.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)
    expected = np.array([fake.embedding(text) for text in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)
    assert [request.json["inputs"] for request in fake.requests] == [
        texts[0:2],
        texts[2:4],
        texts[4:5],
    ]


async def test_embed_with_url_posts_to_exactly_that_url(
    embedder: HuggingFaceEmbedder, fake: FakeHuggingFace
) -> None:
    await embedder.embed(["hello"])

    [sent] = fake.requests
    assert sent.path == "/embed"
    assert sent.json == {"inputs": ["hello"], "truncate": True}
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"


async def test_embed_with_repo_id_posts_to_hf_inference_pipeline(
    base_url: str, fake: FakeHuggingFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = "/hf-inference/models/{model}/pipeline/feature-extraction"
    monkeypatch.setattr(huggingface, "HF_INFERENCE_EMBED_URL", base_url + route)
    backend = HuggingFaceEmbedder(model=EMBED_MODEL, api_key=API_KEY)
    try:
        matrix = await backend.embed(["hello", "world"])
    finally:
        await backend.aclose()

    assert matrix.shape == (2, 384)
    [sent] = fake.requests  # no Hub lookup before the request
    assert sent.path == route.format(model=EMBED_MODEL)


def test_init_with_repo_id_targets_router_hf_inference_url() -> None:
    backend = HuggingFaceEmbedder(model=EMBED_MODEL, api_key=API_KEY)

    assert backend.url == (
        "https://router.huggingface.co/hf-inference/models/"
        "sentence-transformers/all-MiniLM-L6-v2/pipeline/feature-extraction"
    )


async def test_embed_no_texts_returns_empty_matrix_without_request(
    embedder: HuggingFaceEmbedder, fake: FakeHuggingFace
) -> None:
    matrix = await embedder.embed([])

    assert matrix.shape == (0, 384)
    assert fake.requests == []


async def test_embed_after_429_retries_and_succeeds(
    embedder: HuggingFaceEmbedder, fake: FakeHuggingFace, clock: FakeClock
) -> None:
    fake.push(status(429, headers={"Retry-After": "2"}))

    matrix = await embedder.embed(["hello"])

    assert matrix.shape == (1, 384)
    assert len(fake.requests) == 2
    assert clock.sleeps == [2.0]


async def test_embed_with_wrong_dimension_raises_upstream_error(
    embedder: HuggingFaceEmbedder, fake: FakeHuggingFace
) -> None:
    fake.push(wrong_dimension())

    with pytest.raises(UpstreamError, match="383"):
        await embedder.embed(["hello"])


@pytest.mark.parametrize(
    "body",
    [
        "<html>not json</html>",
        json.dumps({"error": "loading"}),
        "[[1.0, 2.0], [3.0]]",
        json.dumps([[0.0] * 384]),
    ],
    ids=["not-json", "object", "ragged", "zero-vector"],
)
async def test_embed_with_malformed_body_raises_upstream_error(
    embedder: HuggingFaceEmbedder, fake: FakeHuggingFace, body: str
) -> None:
    fake.push(malformed(body))

    with pytest.raises(UpstreamError) as caught:
        await embedder.embed(["hello"])

    assert type(caught.value) is UpstreamError


async def test_embed_when_server_too_slow_raises_timeout(
    base_url: str, fake: FakeHuggingFace
) -> None:
    fake.push(delay(1.0))
    backend = HuggingFaceEmbedder(
        model=EMBED_MODEL, api_key=API_KEY, url=f"{base_url}/embed", timeout=0.2
    )
    try:
        with pytest.raises(UpstreamTimeout):
            await backend.embed(["hello"])
    finally:
        await backend.aclose()


async def test_stream_across_client_rotation_finishes_open_stream(
    base_url: str, fake: FakeHuggingFace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(huggingface, "STREAMS_PER_CLIENT", 2)
    backend = HuggingFaceGenerator(model=MODEL, api_key=API_KEY, base_url=f"{base_url}/v1")
    try:
        open_stream = backend.stream(_request())
        first = await anext(open_stream)
        later = ["".join([d async for d in backend.stream(_request())]) for _ in range(5)]
        rest = [delta async for delta in open_stream]
    finally:
        await backend.aclose()

    assert first + "".join(rest) == DEFAULT_ANSWER
    assert later == [DEFAULT_ANSWER] * 5
    assert len(fake.requests) == 6
