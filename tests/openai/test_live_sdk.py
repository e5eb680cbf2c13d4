"""The official `openai` package, sync and async, against `chatbot serve` on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.openai.conftest import LiveServer, run_sql

LIGHTHOUSE = (
    "The Korvath lighthouse was painted teal in 1911. Its first keeper was Ilse Marren, "
    "who kept a logbook of every storm. The lamp burns whale oil no longer."
)
QUESTION = "Who was the first keeper of the lighthouse?"


def sync_client(server: LiveServer, key: str) -> OpenAI:
    # No retries: a 401 or 503 must surface as it is, not after backoff.
    return OpenAI(base_url=server.v1, api_key=key, max_retries=0, timeout=120)


def async_client(server: LiveServer, key: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.v1, api_key=key, max_retries=0, timeout=120)


def ask(question: str = QUESTION) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": question}]


def test_models_list_with_key_includes_rag(live_server: LiveServer) -> None:
    with sync_client(live_server, live_server.new_key("models@example.com")) as client:
        models = client.models.list()
        ids = [m.id for m in models]
        assert "rag" in ids
        assert "rag-embedding" in ids
        assert client.models.retrieve("rag").owned_by == "ragchat"


def test_chat_completion_with_uploaded_document_cites_it(live_server: LiveServer) -> None:
    key = live_server.new_key("cite@example.com")
    doc_id = live_server.upload(key, "Lighthouse", LIGHTHOUSE)
    with sync_client(live_server, key) as client:
        completion = client.chat.completions.create(model="rag", messages=ask())
    assert completion.object == "chat.completion"
    assert completion.model == "rag"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "Ilse Marren" in (choice.message.content or "")
    assert "[1]" in (choice.message.content or "")
    extra = completion.model_extra or {}
    assert extra["sources"][0]["document_id"] == doc_id
    assert extra["sources"][0]["title"] == "Lighthouse"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_stream_chunks_concatenate_to_the_plain_answer(live_server: LiveServer) -> None:
    key = live_server.new_key("stream@example.com")
    live_server.upload(key, "Lighthouse", LIGHTHOUSE)
    with sync_client(live_server, key) as client:
        plain = client.chat.completions.create(model="rag", messages=ask())
        stream = client.chat.completions.create(
            model="rag",
            messages=ask(),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert finishes.count("stop") == 1
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert (chunks[0].model_extra or {})["sources"][0]["title"] == "Lighthouse"


def test_stream_without_include_usage_has_no_usage(live_server: LiveServer) -> None:
    key = live_server.new_key("nousage@example.com")
    with sync_client(live_server, key) as client:
        chunks = list(client.chat.completions.create(model="rag", messages=ask(), stream=True))
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


async def test_async_client_plain_and_streamed_answers_agree(live_server: LiveServer) -> None:
    key = live_server.new_key("async@example.com")
    live_server.upload(key, "Lighthouse", LIGHTHOUSE)
    async with async_client(live_server, key) as client:
        plain = await client.chat.completions.create(model="rag", messages=ask())
        stream = await client.chat.completions.create(
            model="rag",
            messages=ask(),
            stream=True,
            stream_options={"include_usage": True},
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "Ilse Marren" in (plain.choices[0].message.content or "")
    assert "".join(parts).strip() == plain.choices[0].message.content


async def test_async_client_unknown_key_raises_authentication_error(
    live_server: LiveServer,
) -> None:
    async with async_client(live_server, "sk-" + "0" * 43) as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"


def test_jwt_access_token_works_as_api_key(live_server: LiveServer) -> None:
    token = live_server.login("jwt@example.com")
    with sync_client(live_server, token) as client:
        assert "rag" in [m.id for m in client.models.list()]


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "system", "content": "Be brief."}],
        [{"role": "user", "content": "   "}],
        [],
    ],
    ids=["no-user-message", "blank-question", "no-messages"],
)
def test_invalid_messages_raise_bad_request_error(
    live_server: LiveServer, messages: list[ChatCompletionMessageParam]
) -> None:
    with (
        sync_client(live_server, live_server.new_key("bad@example.com")) as client,
        pytest.raises(openai.BadRequestError) as caught,
    ):
        client.chat.completions.create(model="rag", messages=messages)
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    assert str(body["param"]).startswith("messages")


def test_unknown_model_raises_not_found_error(live_server: LiveServer) -> None:
    with sync_client(live_server, live_server.new_key("model404@example.com")) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=ask())
        assert caught.value.code == "model_not_found"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-4o")


def test_key_lifecycle_create_use_revoke(live_server: LiveServer) -> None:
    token = live_server.login("lifecycle@example.com")
    created = live_server.create_key(token, "temporary")
    with sync_client(live_server, created["key"]) as client:
        assert client.models.list().data
        live_server.revoke(token, created["id"])
        with pytest.raises(openai.AuthenticationError):
            client.models.list()


async def test_expired_key_raises_authentication_error(live_server: LiveServer) -> None:
    token = live_server.login("expiry@example.com")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = live_server.create_key(token, "expiring", expires_at=later)
    async with async_client(live_server, created["key"]) as client:
        assert (await client.models.list()).data
        await run_sql(
            live_server.database_url,
            "UPDATE api_keys SET expires_at = :past WHERE id = :id",
            past=datetime.now(UTC) - timedelta(seconds=1),
            id=created["id"],
        )
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.models.list()
    assert "expired" in caught.value.message


def test_two_users_keys_see_only_their_own_documents(live_server: LiveServer) -> None:
    ada = live_server.new_key("ada.iso@example.com")
    bob = live_server.new_key("bob.iso@example.com")
    live_server.upload(ada, "Lighthouse", LIGHTHOUSE)
    with sync_client(live_server, bob) as client:
        answer = client.chat.completions.create(model="rag", messages=ask())
    assert "Ilse Marren" not in (answer.choices[0].message.content or "")
    assert (answer.model_extra or {})["sources"] == []
    with sync_client(live_server, ada) as client:
        own = client.chat.completions.create(model="rag", messages=ask())
    assert "Ilse Marren" in (own.choices[0].message.content or "")


def test_turns_are_stored_in_the_callers_history(live_server: LiveServer) -> None:
    token = live_server.login("history@example.com")
    key = live_server.create_key(token)["key"]
    with sync_client(live_server, key) as client:
        first = client.chat.completions.create(model="rag", messages=ask(), user="alice")
        other = client.chat.completions.create(model="rag", messages=ask(), user="bob")
        again = client.chat.completions.create(model="rag", messages=ask(), user="alice")
    conversation = (first.model_extra or {})["conversation_id"]
    assert (again.model_extra or {})["conversation_id"] == conversation
    assert (other.model_extra or {})["conversation_id"] != conversation
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        history = http.get(
            "/api/chat-history/",
            params={"conversation_id": conversation},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    assert [(m["role"], m["content"]) for m in history] == [
        ("user", QUESTION),
        ("bot", first.choices[0].message.content),
        ("user", QUESTION),
        ("bot", again.choices[0].message.content),
    ]


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


# Omitted, the SDK asks for base64 (little-endian float32) and decodes it itself.
@pytest.mark.parametrize("encoding_format", [None, "float"], ids=["sdk-default-base64", "float"])
def test_embeddings_are_unit_vectors_in_the_store_space(
    live_server: LiveServer, encoding_format: Literal["float"] | None
) -> None:
    key = live_server.new_key(f"emb-{encoding_format}@example.com")
    texts = [QUESTION, LIGHTHOUSE, "Quarterly revenue grew by four percent."]
    with sync_client(live_server, key) as client:
        if encoding_format is None:
            result = client.embeddings.create(model="rag-embedding", input=texts)
        else:
            result = client.embeddings.create(
                model="rag-embedding", input=texts, encoding_format=encoding_format
            )
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-3 for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2]) + 0.2
    assert result.usage.prompt_tokens > 0


def test_embeddings_unknown_model_raises_not_found_error(live_server: LiveServer) -> None:
    with (
        sync_client(live_server, live_server.new_key("emb404@example.com")) as client,
        pytest.raises(openai.NotFoundError),
    ):
        client.embeddings.create(model="text-embedding-3-small", input="hello")


def test_server_log_never_holds_keys_or_tokens(live_server: LiveServer) -> None:
    key = live_server.new_key("log@example.com")
    with sync_client(live_server, key) as client:
        client.models.list()
        with pytest.raises(openai.AuthenticationError):
            sync_client(live_server, key + "x").models.list()
    log = live_server.log()
    assert "GET /v1/models" in log  # the access log is on, and holds paths only
    leaked = [s[:12] for s in live_server.secrets if s in log or s[-20:] in log]
    assert leaked == []


README = Path(__file__).resolve().parents[2] / "README.md"
HANDBOOK = (
    "# Staff handbook\n"
    "Every employee gets 25 days of paid leave per year. Up to 5 unused days carry over.\n"
)


def readme_snippet() -> str:
    section = README.read_text().split("## OpenAI-compatible API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "the OpenAI-compatible API section has no Python snippet"
    return match.group(1)


def test_readme_python_snippet_answers_from_the_knowledge_base(live_server: LiveServer) -> None:
    key = live_server.new_key("readme@example.com")
    live_server.upload(key, "handbook.md", HANDBOOK)
    code = readme_snippet()
    assert 'base_url="http://localhost:8000/v1", api_key="sk-..."' in code
    code = code.replace("http://localhost:8000/v1", live_server.v1).replace("sk-...", key)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(code, {})  # noqa: S102 - the README's own snippet, against our test server
    plain, sources, streamed = output.getvalue().split("\n", 2)
    assert "25 days of paid leave" in plain
    assert "[1]" in plain
    assert "'title': 'handbook.md'" in sources
    assert streamed.strip() == plain
