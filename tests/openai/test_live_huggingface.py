"""`chatbot serve` answering through the Hugging Face backend (huggingface_hub against the wire
fake on 127.0.0.1), driven by the official `openai` package."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.huggingface import FakeHuggingFace, delay, status
from tests.fakes.server import serve
from tests.openai.conftest import LiveServer, live_database, start_server

pytestmark = pytest.mark.database

FACT = "The Quillon observatory keeps its telescope lens in a vault beneath Lake Varnis."
QUESTION = "Where does the Quillon observatory keep its telescope lens?"
ANSWER = "It is kept in a vault beneath Lake Varnis [1]."
LLM_MAX_TOKENS = 300
KEEPALIVE_SECONDS = 0.2
CHAT_PER_MINUTE = 4


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace(answer=ANSWER)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def hf_server(
    tmp_path_factory: pytest.TempPathFactory, fake_llm: tuple[FakeHuggingFace, str]
) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("live-hf")
    with live_database(workdir) as url:
        yield from start_server(
            workdir,
            url,
            llm_backend="huggingface",
            llm_base_url=f"{fake_llm[1]}/v1",
            huggingface_api_key="hf_test_token",
            llm_retry_deadline_seconds="0.2",
            llm_max_tokens=str(LLM_MAX_TOKENS),
            hf_hub_offline="0",  # huggingface_hub refuses every call when offline
            sse_keepalive_seconds=str(KEEPALIVE_SECONDS),
            rate_limit_enabled="true",
            rate_limit_chat_per_minute=str(CHAT_PER_MINUTE),
        )


@pytest.fixture
def fake(fake_llm: tuple[FakeHuggingFace, str]) -> FakeHuggingFace:
    fake_llm[0].reset()
    return fake_llm[0]


def client_for(server: LiveServer, email: str) -> OpenAI:
    key = server.new_key(email)
    server.upload(key, "Observatory", FACT)
    return OpenAI(base_url=server.v1, api_key=key, max_retries=0, timeout=60)


def _generation(fake: FakeHuggingFace) -> dict[str, Any]:
    """The last chat request the fake received: the answer's (a condensing call may precede)."""
    body: dict[str, Any] = [r for r in fake.requests if r.path == "/v1/chat/completions"][-1].json
    return body


def test_chat_completion_through_huggingface_carries_memory_and_sampling(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Tell me about the Quillon observatory."},
        {"role": "assistant", "content": "It stands on the shore of Lake Varnis."},
        {"role": "user", "content": QUESTION},
    ]
    with client_for(hf_server, "hf-memory@example.com") as client:
        completion = client.chat.completions.create(
            model="rag", messages=messages, temperature=0.7, max_tokens=50
        )
    assert completion.choices[0].message.content == ANSWER
    assert (completion.model_extra or {})["sources"][0]["title"] == "Observatory"
    sent = _generation(fake)
    prompt = "\n".join(str(m["content"]) for m in sent["messages"])
    assert "It stands on the shore of Lake Varnis." in prompt  # the client's history is memory
    assert QUESTION in prompt
    assert FACT in prompt  # the retrieved context
    assert "pirate" not in prompt  # our system prompt grounds the answer, not the client's
    assert sent["temperature"] == 0.7
    assert sent["max_tokens"] == 50


def test_max_tokens_above_the_configured_limit_is_capped(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    with client_for(hf_server, "hf-cap@example.com") as client:
        client.chat.completions.create(
            model="rag",
            messages=[{"role": "user", "content": QUESTION}],
            max_completion_tokens=100_000,
        )
    assert _generation(fake)["max_tokens"] == LLM_MAX_TOKENS


def test_stream_through_huggingface_concatenates_to_the_answer(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    with client_for(hf_server, "hf-stream@example.com") as client:
        stream = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == ANSWER
    assert _generation(fake)["stream"] is True


def test_upstream_unavailable_raises_internal_server_error_503(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    client = client_for(hf_server, "hf-503@example.com")
    fake.push(status(503), times=None)
    with client, pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}]
        )
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_unavailable"
    assert caught.value.type == "server_error"


def test_upstream_failure_mid_stream_raises_api_error(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    client = client_for(hf_server, "hf-midstream@example.com")
    fake.push(status(400), times=None)  # a bad answer from the LLM: our 502
    with client:
        stream = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        with pytest.raises(openai.APIError) as caught:
            list(stream)
    assert caught.value.code == "upstream_error"


def test_client_disconnect_mid_stream_stores_the_partial_answer_interrupted(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    token = hf_server.login("hf-disconnect@example.com")
    key = hf_server.create_key(token)["key"]
    hf_server.upload(key, "Observatory", FACT)
    fake.push(delay(6))  # the LLM is slow to start answering
    with OpenAI(base_url=hf_server.v1, api_key=key, max_retries=0, timeout=60) as client:
        stream = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        first = next(iter(stream))  # role and sources come before the LLM's first token
        conversation = (first.model_extra or {})["conversation_id"]
        stream.close()
    deadline = time.monotonic() + 5  # before the fake would have answered
    bots: list[dict[str, Any]] = []
    with httpx.Client(base_url=hf_server.url, timeout=10) as http:
        while not bots and time.monotonic() < deadline:
            page = http.get(
                f"/api/conversations/{conversation}/messages/",
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            bots = [m for m in page["items"] if m["role"] == "bot"]
            time.sleep(0.05)  # polling for the server to notice the disconnect
    assert bots, "no bot message stored after the client went away"
    assert bots[-1]["interrupted"] is True


def test_slow_upstream_stream_gets_keepalive_comments_that_sdks_skip(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    key = hf_server.new_key("hf-keepalive@example.com")
    hf_server.upload(key, "Observatory", FACT)
    fake.push(delay(1.5))
    body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with (
        httpx.Client(base_url=hf_server.v1, timeout=30) as http,
        http.stream(
            "POST", "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        lines = [line for line in response.iter_lines() if line]
    first_content = next(i for i, line in enumerate(lines) if '"content": "It' in line)
    assert ": keepalive" in lines[1:first_content]  # sent while the LLM was silent
    assert lines[-1] == "data: [DONE]"
    fake.push(delay(1.5))
    with OpenAI(base_url=hf_server.v1, api_key=key, max_retries=0, timeout=30) as client:
        stream = client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == ANSWER


def test_chat_beyond_the_rate_limit_raises_rate_limit_error(
    hf_server: LiveServer, fake: FakeHuggingFace
) -> None:
    token = hf_server.login("hf-ratelimit@example.com")
    key = hf_server.create_key(token)["key"]
    question: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]
    with OpenAI(base_url=hf_server.v1, api_key=key, max_retries=0, timeout=30) as client:
        for _ in range(CHAT_PER_MINUTE):
            client.chat.completions.create(model="rag", messages=question)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="rag", messages=question)
    assert int(caught.value.response.headers["retry-after"]) >= 1
    assert caught.value.type == "rate_limit_error"
    # The login token of the same user shares the count: the limit is per user.
    with (
        OpenAI(base_url=hf_server.v1, api_key=token, max_retries=0, timeout=30) as client,
        pytest.raises(openai.RateLimitError),
    ):
        client.chat.completions.create(model="rag", messages=question)
