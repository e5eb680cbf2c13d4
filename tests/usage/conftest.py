"""Apps for the usage and budget tests: the real Hugging Face client against the wire fake
(which reports OpenAI's `usage`), and answers in general-knowledge mode, so a turn calls the
LLM without any document to retrieve."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import httpx
import pytest

from app.api.state import State
from tests.conftest import AppFactory
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.server import serve

ANSWER = "Paris is the capital of France."
MAX_TOKENS = 16


class RemoteFactory(Protocol):
    def __call__(
        self, **overrides: Any
    ) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]: ...


@pytest.fixture(scope="module")
def hf_server() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace(answer=ANSWER)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def hf(hf_server: tuple[FakeHuggingFace, str]) -> FakeHuggingFace:
    hf_server[0].reset()
    return hf_server[0]


@pytest.fixture
def remote(
    app_factory: AppFactory, hf: FakeHuggingFace, hf_server: tuple[FakeHuggingFace, str]
) -> RemoteFactory:
    base_url = hf_server[1]

    def factory(**overrides: Any) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]:
        return app_factory(
            **{
                "llm_backend": "huggingface",
                "llm_base_url": f"{base_url}/v1",
                "llm_model": "test-model",
                "huggingface_api_key": "hf_test_token",
                "llm_retry_deadline_seconds": 0.3,
                "llm_max_tokens": MAX_TOKENS,
                "embedding_backend": "huggingface",
                "embedding_url": f"{base_url}/embed",
                "rag_fallback": "general",
                **overrides,
            }
        )

    return factory


def llm_calls(fake: FakeHuggingFace) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/chat/completions")
