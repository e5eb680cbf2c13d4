"""Upstream error messages name the configured service: a self-hosted LLM_BASE_URL server is
not "Hugging Face"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.errors import UpstreamError
from app.rag.backends.huggingface import HuggingFaceEmbedder, HuggingFaceGenerator
from app.rag.protocols import ChatTurn, GenerationRequest
from tests.fakes.huggingface import FakeHuggingFace, status
from tests.fakes.server import serve

REQUEST = GenerationRequest(question="q", contexts=[], messages=[ChatTurn("user", "q")])


@pytest.fixture(scope="module")
def fake_url() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace()
    with serve(fake.app) as url:
        yield fake, url


async def test_generate_self_hosted_failure_names_llm_base_url(
    fake_url: tuple[FakeHuggingFace, str],
) -> None:
    fake, url = fake_url
    fake.reset()
    fake.push(status(500))
    generator = HuggingFaceGenerator(model="m", api_key=None, base_url=f"{url}/v1")
    try:
        with pytest.raises(UpstreamError) as caught:
            await generator.generate(REQUEST)
    finally:
        await generator.aclose()

    assert caught.value.detail == "The language model server at LLM_BASE_URL failed with HTTP 500."
    assert "Hugging Face" not in caught.value.detail


async def test_stream_self_hosted_unavailable_names_llm_base_url(
    fake_url: tuple[FakeHuggingFace, str],
) -> None:
    fake, url = fake_url
    fake.reset()
    fake.push(status(503), times=None)
    generator = HuggingFaceGenerator(
        model="m", api_key=None, base_url=f"{url}/v1", retry_deadline=0
    )
    try:
        with pytest.raises(UpstreamError) as caught:
            async for _ in generator.stream(REQUEST):
                pass
    finally:
        await generator.aclose()
        fake.reset()

    assert caught.value.detail.startswith(
        "The language model server at LLM_BASE_URL is unavailable"
    )


async def test_embed_self_hosted_failure_names_embedding_url(
    fake_url: tuple[FakeHuggingFace, str],
) -> None:
    fake, url = fake_url
    fake.reset()
    fake.push(status(500))
    embedder = HuggingFaceEmbedder(model="m", api_key=None, url=f"{url}/embed")
    try:
        with pytest.raises(UpstreamError) as caught:
            await embedder.embed(["text"])
    finally:
        await embedder.aclose()

    assert caught.value.detail == "The embedding server at EMBEDDING_URL failed with HTTP 500."
