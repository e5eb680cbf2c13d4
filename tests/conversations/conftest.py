"""Apps for the conversation tests: the real Hugging Face client against the wire fake for
both embeddings and answers (fast, no model), and the local vector store."""

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

ANSWER = "Employees receive 25 days of paid leave [1]."


class RemoteFactory(Protocol):
    def __call__(
        self, **overrides: Any
    ) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]: ...


def remote_settings(base_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "llm_backend": "huggingface",
        "llm_base_url": f"{base_url}/v1",
        "llm_model": "test-model",
        "huggingface_api_key": "hf_test_token",
        "llm_retry_deadline_seconds": 0.3,
        "embedding_backend": "huggingface",
        "embedding_url": f"{base_url}/embed",
        # The fake's word-hash vectors score lower than a real model's.
        "rag_min_score": 0.1,
        **overrides,
    }


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
    def factory(**overrides: Any) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]:
        return app_factory(**remote_settings(hf_server[1], **overrides))

    return factory
